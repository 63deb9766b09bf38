"""The CLI under faults: error types at the command line, Ctrl-C, recording, the progress bar."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

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
    http_server: FakeWinRMServer, command: list[str], injection: dict, error_type: str, changed: bool | None
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


def test_ctrl_c_stops_new_work_lets_running_finish_and_prints_what_finished(users_file: Path) -> None:
    with (
        FakeWinRMServer(SCENARIOS, users_file=users_file) as fast,
        FakeWinRMServer(SCENARIOS, users_file=users_file, latency_ms=400) as slow,
        FakeWinRMServer(SCENARIOS, users_file=users_file) as never,
    ):
        env = {**os.environ, "HVJOB_PASSWORD": CANARY_PASSWORD}
        proc = subprocess.Popen(
            [*HVJOB, "--scheme", "http", "-u", "alice", "--concurrency", "1", "--output", "jsonl",
             "kill", host(fast), host(slow), host(never), "--job", KILLABLE],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # the fast host is done; the slow one is running
        assert first["host"] == host(fast) and first["status"] == "ok"
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()  # not communicate(): it would skip lines readline() buffered
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.wait(timeout=60)
    assert proc.returncode == 130, err
    lines = [json.loads(line) for line in out.splitlines()]
    finished = [line for line in lines if "host" in line]
    assert [r["host"] for r in finished] == [host(slow)]  # let finish, and printed
    assert finished[0]["status"] == "ok" and finished[0]["return_value"] == 0
    assert lines[-1]["summary"]["ok"] == 2 and lines[-1]["summary"].get("interrupted") is True
    assert never.stats.requests == 0  # no new work after Ctrl-C
    assert "interrupted" in err and "Traceback" not in err and CANARY_PASSWORD not in out + err


def test_record_from_the_cli_replays_to_the_same_answer(http_server: FakeWinRMServer, tmp_path: Path) -> None:
    record = tmp_path / "recorded"
    args = ["--scheme", "http", "-u", "alice", "--output", "json"]
    first = hvjob(*args, "--record", str(record), "kill", host(http_server), "--job", KILLABLE)
    assert first.returncode == 0, first.stderr
    files = sorted(record.glob("*.yml"))
    assert len(files) == 1
    text = files[0].read_text()
    assert "KillJob" in text and CANARY_PASSWORD not in text and "hvjob_fixture: 1" in text
    with FakeWinRMServer(record, users_file=http_server.users_file) as replay:
        second = hvjob(*args, "kill", host(replay), "--job", KILLABLE)
        assert replay.stats.unmatched == []
    strip = ("host", "elapsed_ms")
    assert {k: v for k, v in as_json(second)["results"][0].items() if k not in strip} == {
        k: v for k, v in as_json(first)["results"][0].items() if k not in strip
    }


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
