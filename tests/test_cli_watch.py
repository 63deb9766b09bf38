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
