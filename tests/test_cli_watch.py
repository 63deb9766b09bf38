"""``hvjob watch`` and the progress of waits, through the real command."""

from __future__ import annotations

import json

from conftest import job_id
from hvjob.testing import FakeWinRMServer
from test_cli import host, hvjob

ARGS = ["--scheme", "http", "-u", "alice"]


def test_off_a_terminal_each_job_appears_once_as_a_json_line(http_server: FakeWinRMServer) -> None:
    proc = hvjob(*ARGS, "watch", host(http_server), "--until-done", "--job", job_id(0x402), "--interval", "0.2")
    assert proc.returncode == 0, proc.stderr  # that job is Completed: done at once
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(e["event"], e["job"], e["state"], e["job_state"]) for e in events] == [
        ("appeared", job_id(0x402), "Completed", 7)
    ]


def test_until_done_on_a_job_that_is_nowhere_is_not_found(http_server: FakeWinRMServer) -> None:
    proc = hvjob(*ARGS, "watch", host(http_server), "--until-done", "--job", "5F3C-typo", "--interval", "0.2")
    assert proc.returncode == 1 and "not found: 5F3C-typo" in proc.stderr


def test_until_done_gives_up_after_its_timeout(http_server: FakeWinRMServer) -> None:
    proc = hvjob(*ARGS, "watch", host(http_server), "--until-done", "--job", job_id(0x400), "--interval", "0.2",
                 "--timeout", "0.5")  # fmt: skip
    assert proc.returncode == 4  # as wait: still running when the time ran out


# --- against the simulated cluster: a real terminal, and the JSON stream checked against ground truth ----

import os  # noqa: E402
import queue  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from conftest import CANARY_PASSWORD  # noqa: E402
from hvjob.testing.sim import SimulatedCluster, default  # noqa: E402
from sim_helpers import job_client  # noqa: E402
from test_cli import HVJOB  # noqa: E402


def _watch_args(cluster: SimulatedCluster, *extra: str) -> list[str]:
    resolve = [arg for node, where in cluster.resolve.items() for arg in ("--resolve", f"{node}={where}")]
    return [*ARGS, *resolve, "--cluster", "watch", "HVNODE01", "--interval", "0.3", *extra]


def _until(condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Wait for a state (the screen shows X, a line arrived), not for an amount of time."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _stop(cluster: SimulatedCluster, job: str, node: str) -> None:
    with job_client(cluster, node) as client:
        assert client.stop(job).changed is True


class Screen:
    """hvjob running in tmux, a real terminal of 200 x 40; ``text()`` is what a person sees."""

    def __init__(self, argv: list[str]) -> None:
        self.name = f"hvjob-watch-{os.getpid()}-{time.monotonic_ns()}"
        command = " ".join(f"'{a}'" for a in argv)
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", "200", "-y", "40",
             "-e", f"HVJOB_PASSWORD={CANARY_PASSWORD}", command],
            check=True,
        )  # fmt: skip

    def text(self) -> str:
        done = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return done.stdout

    def row(self, job: str) -> str:
        return next((line for line in self.text().splitlines() if job in line), "")

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode == 0

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def _percent(row: str) -> int:
    return int(next(word for word in row.split() if word.endswith("%")).rstrip("%"))


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
def test_the_live_view_in_a_real_terminal(cluster: SimulatedCluster) -> None:
    # The size is the terminal's: no COLUMNS or LINES inherited from the test run.
    screen = Screen(
        ["env", "-u", "COLUMNS", "-u", "LINES", f"PATH={os.environ['PATH']}", *HVJOB, *_watch_args(cluster)]
    )
    try:
        row = _until(lambda: screen.row(default.COMPLETING), "the view shows the cluster's jobs")
        screen_text = screen.text()
        assert "hvjob watch HVNODE01 (cluster, 3 nodes)" in screen_text and "PROGRESS" in screen_text
        assert "Running" in row and _percent(row) == 75
        # The failed job's error, inline under its name (wrapped to the column: compare the words).
        lines = screen_text.splitlines()
        start = next(i for i, line in enumerate(lines) if default.FAILED in line) + 1
        under = []
        for line in lines[start:]:
            if not line.strip() or line.lstrip().startswith(("HVNODE", "Ctrl-C")):
                break
            under.append(line.strip())
        assert " ".join(under) == f"error: ErrorCode 32768: {default.FAILED_DESCRIPTION}", screen_text
        # The progress bar moves as the job runs (its 30 s, three quarters done: 10 s more is 83 %).
        cluster.advance(10)
        _until(lambda: _percent(screen.row(default.COMPLETING)) > 75, "the progress bar moved")
        assert 80 <= _percent(screen.row(default.COMPLETING)) < 100
        # A job stopped by someone else shows its new state.
        _stop(cluster, default.RUNNING, "HVNODE01")
        _until(lambda: "Killed" in screen.row(default.RUNNING), "the stopped job shows Killed")
        screen.keys("C-c")
        _until(lambda: not screen.alive(), "Ctrl-C ends the view")
    finally:
        screen.close()


def _add_sentinel(cluster: SimulatedCluster) -> None:
    cluster.add_job(id="SENTINEL-JOB", node="HVNODE02")


def _truth(cluster: SimulatedCluster) -> dict[str, str]:
    """Each job's state in the simulator's ground truth ("vanished" once removed)."""
    return {j["id"]: ("vanished" if j["removed"] else j["state"]) for j in cluster.jobs()}


def _expected(before: dict[str, str], after: dict[str, str]) -> set[tuple[str, str, str]]:
    """The events a watcher must print for the change from ``before`` to ``after``."""
    terminal = {"Completed", "Terminated", "Killed", "Exception", "Completed with Warnings"}
    events = set()
    for job, state in after.items():
        old = before.get(job)
        if state == "vanished":
            if old not in (None, "vanished"):
                events.add(("vanished", job, old))
        elif old is None:
            events.add(("appeared", job, state))
        elif old != state:
            events.add(("finished" if state in terminal else "changed", job, state))
    return events


def test_the_json_stream_has_one_line_per_state_change_and_misses_none(cluster: SimulatedCluster) -> None:
    env = {**os.environ, "HVJOB_PASSWORD": CANARY_PASSWORD}
    proc = subprocess.Popen([*HVJOB, *_watch_args(cluster)], stdout=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[dict[str, Any]] = queue.Queue()
    assert proc.stdout is not None
    stream = proc.stdout

    def read() -> None:
        for line in stream:
            lines.put(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[tuple[str, str, str]] = []

    def collect(expected: set[tuple[str, str, str]]) -> None:
        """Read until every expected event came; any other event is a failure."""
        wanted = set(expected)
        while wanted:
            event = lines.get(timeout=30)
            key = (event["event"], event["job"], event["state"])
            seen.append(key)
            assert key in wanted, f"unexpected {key}; still waiting for {wanted}"
            wanted.discard(key)

    try:
        truth: dict[str, str] = {}
        steps: list[Callable[[], None]] = [
            lambda: None,  # the first refresh: every job appears
            lambda: cluster.advance(40),  # COMPLETING completes
            lambda: _stop(cluster, default.RUNNING, "HVNODE01"),  # killed by someone else
            lambda: cluster.advance(4000),  # LONG_RUNNING completes; finished jobs pass TimeBeforeRemoval
            lambda: _add_sentinel(cluster),  # every refresh before it is in
        ]
        for step in steps:
            step()
            now = _truth(cluster)
            collect(_expected(truth, now))
            truth = now
        assert ("finished", default.COMPLETING, "Completed") in seen and ("finished", default.RUNNING, "Killed") in seen
        assert ("vanished", default.FAILED, "Exception") in seen and ("appeared", "SENTINEL-JOB", "Running") in seen
        assert len(seen) == len(set(seen)) == 6 + 2 + 5 + 1  # one line per change, no repeats
        assert lines.empty()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
def test_wait_shows_the_progress_on_a_terminal(cluster: SimulatedCluster) -> None:
    where = cluster.resolve["HVNODE03"]
    argv = [*HVJOB, *ARGS, "--read-timeout-margin", "1", "wait", where, "--job", default.COMPLETING, "--timeout", "60"]
    screen = Screen(["env", "-u", "COLUMNS", "-u", "LINES", f"PATH={os.environ['PATH']}", *argv])
    try:
        row = f"{where}: {default.COMPLETING}"
        _until(lambda: "75%" in screen.row(row) and "Running" in screen.row(row), "a bar for the job waited on")
        cluster.advance(40)  # it completes
        _until(lambda: "100%" in screen.row(row) and "Completed" in screen.row(row), "the bar reached 100%")
        _until(lambda: "Completed" in screen.text() and "ok=1" in screen.text(), "the result table after the bar")
    finally:
        screen.close()


# --- rejected credentials are not retried; the last screen and the outcome stay after the view ----


def test_a_host_that_rejects_the_credentials_is_asked_once_not_every_refresh(
    cluster: SimulatedCluster, tmp_path: Path
) -> None:
    # A second cluster that has no alice: its node rejects hvjob's credentials.
    other_users = tmp_path / "other-users.txt"
    other_users.write_text(":carol:another-password\n")
    with SimulatedCluster(users_file=other_users, username="carol", password="another-password", speed=0) as other:
        stranger = other.url("HVNODE01")
        nodes = [cluster.url(node) for node in cluster.nodes]
        env = {**os.environ, "HVJOB_PASSWORD": CANARY_PASSWORD}
        argv = [*HVJOB, *ARGS, "watch", *nodes, stranger, "--interval", "0.2", "--until-done",
                "--job", default.COMPLETING]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            served = cluster.fronts[0].stats
            _until(lambda: served.requests >= 6, "several refreshes of the nodes that accept alice")
            cluster.advance(40)  # the job watched completes
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        assert proc.returncode == 0, err  # the job watched finished; the stranger does not hold it
        assert other.fronts[0].stats.auth_rejected == 1  # once, not once per refresh
        failed = [json.loads(line) for line in out.splitlines() if '"host_failed"' in line]
        assert len(failed) == 1 and failed[0]["node"] == stranger and "not polled again" in failed[0]["error"]
        assert set(failed[0]) == {"time", "event", "node", "job", "state", "job_state", "percent", "previous_state",
                                  "error"}  # fmt: skip
        assert "every job watched is finished" in err


def test_when_every_host_rejects_the_credentials_the_watch_ends_unreachable(cluster: SimulatedCluster) -> None:
    env = {**os.environ, "HVJOB_PASSWORD": "not-the-password"}
    nodes = [cluster.url(node) for node in cluster.nodes]
    proc = subprocess.run([*HVJOB, *ARGS, "watch", *nodes, "--interval", "0.2"], capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "no host left to watch" in proc.stderr and "rejected the credentials" in proc.stderr
    assert [front.stats.auth_rejected for front in cluster.fronts] == [1, 1, 1]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
def test_the_last_screen_and_the_outcome_stay_after_the_live_view(cluster: SimulatedCluster, tmp_path: Path) -> None:
    argv = [*HVJOB, *_watch_args(cluster, "--until-done", "--job", default.COMPLETING)]
    script = tmp_path / "watch.sh"
    script.write_text(shlex.join(["env", "-u", "COLUMNS", "-u", "LINES", f"PATH={os.environ['PATH']}", *argv])
                      + "\necho exit=$?\nsleep 60\n")  # fmt: skip
    screen = Screen(["sh", str(script)])
    try:
        _until(lambda: "Running" in screen.row(default.COMPLETING), "the live view")
        cluster.advance(40)
        text = _until(lambda: "exit=" in screen.text() and screen.text(), "the watch ended")
        assert "exit=0" in text and "hvjob: every job watched is finished" in text
        assert "Completed" in next(line for line in text.splitlines() if default.COMPLETING in line)
        assert "Ctrl-C to quit" not in text  # the final table, printed on the normal screen
    finally:
        screen.close()


def test_the_columns_that_fit_keep_node_job_and_state_and_drop_the_rest_in_order() -> None:
    from hvjob.cli.watch import Row, _columns

    def row(cls: str) -> Row:
        return Row("HVNODE01", job_id(1), cls, "Nightly export", 4, 40, 252.5, "CONTOSO\\backup-svc", "")

    one_class = [row("Msvm_CollectionReferencePointExportJob")] * 2
    assert list(_columns(one_class, 200)) == [
        "NODE",
        "JOB",
        "NAME / VM GROUP",
        "STATE",
        "PROGRESS",
        "ELAPSED",
        "OWNER",
    ]  # fmt: skip  (one class: the heading names it)
    assert "CLASS" in _columns([*one_class, row("Msvm_MigrationJob")], 200)
    narrow = _columns(one_class, 70)
    assert list(narrow) == ["NODE", "JOB", "STATE", "PROGRESS"] and narrow["PROGRESS"].width == 4  # no bar
    assert list(_columns(one_class, 20)) == ["NODE", "JOB", "STATE"]  # never dropped, whatever the width


def test_a_failed_jobs_error_stays_in_view_on_a_narrow_terminal() -> None:
    from hvjob.cli.watch import Row, _columns

    failed = Row(
        "HVNODE01", job_id(5), "Msvm_ConcreteJob", "Export", 10, 35, 40.0, "CONTOSO\\backup-svc", "ErrorCode 32768"
    )
    assert "NAME / VM GROUP" in _columns([failed], 90)
    assert "NAME / VM GROUP" not in _columns([replace(failed, error="")], 90)  # room for progress instead
