"""The CLI under faults: error types at the command line, Ctrl-C, recording, the progress bar."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CANARY_PASSWORD, SCENARIOS, job_id
from hvjob.testing import FakeWinRMServer
from test_cli import HVJOB, as_json, host, hvjob

RUNNING = job_id(0x300)
KILLABLE = job_id(0x100)  # KillJob returns 0
FAST_TIMEOUTS = ["--operation-timeout", "1", "--read-timeout-margin", "1", "--connect-timeout", "2"]


@pytest.mark.parametrize(
    ("command", "injection", "error_type", "changed"),
    [
        (["show", "{host}", "--job", RUNNING], {"latency_ms": 4000}, "timeout", False),
        (["kill", "{host}", "--job", KILLABLE], {"latency_ms": 4000}, "outcome_unknown", None),
        (["kill", "{host}", "--job", KILLABLE], {"close": "mid_response"}, "outcome_unknown", None),
        (["show", "{host}", "--job", RUNNING], {"body": "malformed"}, "protocol", False),
        (["kill", "{host}", "--job", KILLABLE], {"body": "truncated"}, "protocol", None),
        (
            ["kill", "{host}", "--job", KILLABLE],
            {"relates_to": "uuid:00000000-0000-0000-0000-000000000000"},
            "protocol",
            None,
        ),
    ],
)
def test_error_types_at_the_command_line(
    http_server: FakeWinRMServer, command: list[str], injection: dict[str, Any], error_type: str, changed: bool | None
) -> None:
    http_server.inject_next(**injection)
    args = [a.replace("{host}", host(http_server)) for a in command]
    proc = hvjob("--scheme", "http", "-u", "alice", *FAST_TIMEOUTS, "--output", "json", *args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = as_json(proc)
    result = doc["results"][0]
    assert result["status"] == "failed"
    assert result["error"]["type"] == error_type, result["error"]
    assert result["changed"] is changed
    assert doc["summary"]["failed"] == 1


FALLS_BACK = job_id(0x311)  # stop: Get Running, RequestStateChange returns 1, then KillJob


def _stop_three(fast: FakeWinRMServer, slow: FakeWinRMServer, never: FakeWinRMServer) -> subprocess.Popen[str]:
    """``hvjob stop`` on three hosts one at a time; the first is quick, the second slow."""
    env = {**os.environ, "HVJOB_PASSWORD": CANARY_PASSWORD}
    return subprocess.Popen(
        [*HVJOB, "--scheme", "http", "-u", "alice", "--concurrency", "1", "--output", "jsonl",
         "stop", host(fast), host(slow), host(never), "--job", FALLS_BACK],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a state the test depends on (not for an amount of time)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def _read_until(stream: Any, marker: str) -> str:
    """Lines of ``stream`` up to and including the first that contains ``marker``."""
    seen = ""
    for line in stream:
        seen += str(line)
        if marker in line:
            return seen
    raise AssertionError(f"{marker!r} never came; got {seen!r}")


def test_ctrl_c_sends_no_new_request_and_says_per_host_what_was_sent(users_file: Path) -> None:
    with (
        FakeWinRMServer(SCENARIOS, users_file=users_file) as fast,
        FakeWinRMServer(SCENARIOS, users_file=users_file, latency_ms=400) as slow,
        FakeWinRMServer(SCENARIOS, users_file=users_file) as never,
    ):
        proc = _stop_three(fast, slow, never)
        assert proc.stdout is not None and proc.stderr is not None
        first = json.loads(proc.stdout.readline())  # the fast host is done; the slow one is running
        assert first["host"] == host(fast) and first["changed"] is True
        _until(lambda: slow.stats.requests > 0, "the slow host's first request arrived")
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()  # not communicate(): it would skip lines readline() buffered
        err = proc.stderr.read()
        proc.wait(timeout=60)
        slow_invokes, never_requests = slow.stats.invokes, never.stats.requests
    assert proc.returncode == 130, err
    lines = [json.loads(line) for line in out.splitlines()]
    by_host = {line["host"]: line for line in lines if "host" in line}
    # The slow host's Get was on the wire: it finished, and nothing was sent after it.
    assert slow_invokes == 0
    cut = by_host[host(slow)]
    assert cut["error"]["type"] == "interrupted" and "RequestStateChange" in cut["error"]["message"]
    assert [(r["request"], r["outcome"]) for r in cut["requests"]] == [("Get", "answered")] and cut["changed"] is False
    assert cut["requests"][0]["message_id"].startswith("uuid:")  # to match the node's own logs
    # The host never started is accounted for too: nothing was sent to it.
    assert never_requests == 0
    untouched = by_host[host(never)]
    assert untouched["error"]["type"] == "interrupted" and untouched["requests"] == []
    assert "nothing was sent" in untouched["error"]["message"] and untouched["changed"] is False
    assert lines[-1]["summary"]["ok"] == 1 and lines[-1]["summary"]["interrupted"] is True
    assert "Ctrl-C again" in err and "Traceback" not in err and CANARY_PASSWORD not in out + err


def test_a_second_ctrl_c_stops_waiting_and_still_prints_the_record(users_file: Path) -> None:
    with (
        FakeWinRMServer(SCENARIOS, users_file=users_file) as fast,
        FakeWinRMServer(SCENARIOS, users_file=users_file, latency_ms=3000) as slow,
        FakeWinRMServer(SCENARIOS, users_file=users_file) as never,
    ):
        proc = _stop_three(fast, slow, never)
        assert proc.stdout is not None and proc.stderr is not None
        json.loads(proc.stdout.readline())
        _until(lambda: slow.stats.requests > 0, "the slow host's first request arrived")
        proc.send_signal(signal.SIGINT)
        _read_until(proc.stderr, "Ctrl-C again")  # the first one was handled: now the second
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()
        err = proc.stderr.read()
        proc.wait(timeout=60)
    assert proc.returncode == 130, err
    lines = [json.loads(line) for line in out.splitlines()]
    by_host = {line["host"]: line for line in lines if "host" in line}
    cut = by_host[host(slow)]
    assert cut["error"]["type"] == "interrupted" and "on the wire" in cut["error"]["message"]
    # "in flight": the record was printed before the slow host's answer came (it was not waited for).
    assert [(r["request"], r["outcome"]) for r in cut["requests"]] == [("Get", "in flight")], (cut, err)
    assert by_host[host(never)]["requests"] == [] and lines[-1]["summary"]["interrupted"] is True
    assert "Traceback" not in err and CANARY_PASSWORD not in out + err


def test_record_from_the_cli_replays_to_the_same_answer(http_server: FakeWinRMServer, tmp_path: Path) -> None:
    record = tmp_path / "recorded"
    args = ["--scheme", "http", "-u", "alice", "--output", "json"]
    first = hvjob(*args, "--record", str(record), "kill", host(http_server), "--job", KILLABLE)
    assert first.returncode == 0, first.stderr
    files = sorted(record.glob("*.yml"))
    assert len(files) == 1
    assert f"hvjob: recorded {files[0]}" in first.stderr  # says where
    text = files[0].read_text()
    assert "KillJob" in text and CANARY_PASSWORD not in text and "hvjob_fixture: 1" in text
    assert 'identified itself (WS-Man Identify) as "Microsoft Corporation"' in text  # what is known, not more
    with FakeWinRMServer(record, users_file=http_server.users_file) as replay:
        second = hvjob(*args, "kill", host(replay), "--job", KILLABLE)
        assert replay.stats.unmatched == []

    def same(result: dict[str, Any]) -> dict[str, Any]:  # what differs between two runs by design
        kept = {k: v for k, v in result.items() if k not in ("host", "elapsed_ms")}
        kept["requests"] = [{k: v for k, v in r.items() if k != "message_id"} for r in kept["requests"]]
        return kept

    assert same(as_json(second)["results"][0]) == same(as_json(first)["results"][0])


def test_an_unreachable_host_leaves_no_empty_recording(tmp_path: Path) -> None:
    from hvjob.testing import free_port

    record = tmp_path / "recorded"
    proc = hvjob("--scheme", "http", "-u", "alice", "--record", str(record), "kill", f"127.0.0.1:{free_port()}",
                 "--job", KILLABLE)  # fmt: skip
    assert proc.returncode == 3 and not list(record.glob("*.yml")) and "recorded" not in proc.stderr


def test_progress_bar_only_on_a_terminal(users_file: Path) -> None:
    with (
        FakeWinRMServer(SCENARIOS, users_file=users_file) as one,
        FakeWinRMServer(SCENARIOS, users_file=users_file) as two,
    ):
        args = [*HVJOB, "--scheme", "http", "-u", "alice", "list", host(one), host(two)]
        env = {**os.environ, "HVJOB_PASSWORD": CANARY_PASSWORD}
        master, slave = pty.openpty()
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, env=env)
        os.close(slave)
        terminal = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed its end
                    break
                if not chunk:
                    break
                terminal += chunk
            elif proc.poll() is not None:
                break
        out, _ = proc.communicate(timeout=30)
        os.close(master)
        assert proc.returncode == 0
        assert b"hosts" in terminal and b"100%" in terminal  # the bar, on the terminal
        assert b"hosts" not in out  # never mixed into the results
        piped = hvjob("--scheme", "http", "-u", "alice", "list", host(one), host(two))
        assert piped.returncode == 0 and "hosts" not in piped.stderr and "%" not in piped.stderr
