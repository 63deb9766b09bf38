"""The fault matrix: every fault the fake server can produce, through the real ``hvjob`` command.

Each case asserts the exact error type and exit status. A hang guard fails a case that runs past
its own timeouts plus a generous margin; that is a guard against hanging, not a timing test.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import CANARY_PASSWORD, SCENARIOS, job_id, real_responses_dir
from hvjob.scenario import load_scenarios
from hvjob.testing import FakeWinRMServer, free_port, make_pki
from test_cli import hvjob
from test_faults import EXPECTED as CAPTURED_FAULTS

KILLABLE = job_id(0x100)  # KillJob returns 0
RUNNING = job_id(0x300)
WAITED = job_id(0x360)  # Running, Running, Completed
TIMEOUTS = ["--operation-timeout", "1", "--read-timeout-margin", "1", "--connect-timeout", "2"]
HANG_GUARD_S = 60  # every case sets timeouts of a few seconds; 60 s means it hung


def _killjob_reply() -> str:
    scenario = next(s for s in load_scenarios(SCENARIOS) if s.name == "killjob_rv_0")
    return scenario.exchanges[0].body


@dataclass
class Case:
    name: str
    command: list[str]  # "{host}" is replaced
    error_type: str | None  # None: the command succeeds
    exit_code: int
    injection: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)
    https: str | None = None  # None (HTTP + encryption), "ok", "unknown_ca", "wrong_name"
    password: str = CANARY_PASSWORD


SHOW = ["show", "{host}", "--job", RUNNING]
KILL = ["kill", "{host}", "--job", KILLABLE]
XXE = (
    '<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&x;</s:Body></s:Envelope>'
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&c;</s:Body></s:Envelope>'
)


def _cases() -> list[Case]:
    reply = _killjob_reply()
    no_rv = re.sub(r"<(\w+:)?ReturnValue>[^<]*</(\w+:)?ReturnValue>", "", reply)
    bad_rv = re.sub(r"(<(\w+:)?ReturnValue>)[^<]*(<)", r"\g<1>zero\g<3>", reply)
    assert no_rv != reply and bad_rv != reply
    return [
        Case("refused", KILL, "connection", 3, server={"refuse": True}),
        Case("reset_during_invoke_response", KILL, "outcome_unknown", 1, {"close": "mid_response"}),
        Case("closed_before_invoke_response", KILL, "outcome_unknown", 1, {"close": "before_response"}),
        Case("reset_during_get_is_retried", SHOW, None, 0, {"close": "mid_response"}),
        Case("idle_close_between_polls", ["wait", "{host}", "--job", WAITED, "--timeout", "20"], None, 0,
             server={"idle_timeout": 0.1}),
        Case("read_timeout_on_get", SHOW, "timeout", 1, {"latency_ms": 4000}),
        Case("read_timeout_on_invoke", KILL, "outcome_unknown", 1, {"latency_ms": 4000}),
        Case("wrong_password", KILL, "authentication", 3, password="Wrong-" + CANARY_PASSWORD),
        Case("unknown_ca", KILL, "tls", 3, https="unknown_ca"),
        Case("wrong_host_name", KILL, "tls", 3, https="wrong_name"),
        Case("strict_channel_binding_is_met", KILL, None, 0, server={"cbt": "strict"}, https="ok"),
        Case("malformed_body", KILL, "protocol", 1, {"body": "malformed"}),
        Case("truncated_body", KILL, "protocol", 1, {"body": "truncated"}),
        Case("oversized_body", SHOW, "protocol", 1, {"body": "oversized", "size": 6 * 1024 * 1024}),
        Case("invalid_utf8", KILL, "protocol", 1, {"raw_body": reply.encode()[:200] + b"\xff\xfe\xfd" + reply.encode()[200:]}),
        Case("utf8_declared_utf16", KILL, "protocol", 1,
             {"raw_body": reply.encode(), "content_type": "application/soap+xml;charset=UTF-16"}),
        Case("unknown_charset", KILL, "protocol", 1,
             {"raw_body": reply.encode(), "content_type": "application/soap+xml;charset=x-no-such-charset"}),
        Case("xxe", KILL, "protocol", 1, {"raw_body": XXE}),
        Case("entity_expansion", KILL, "protocol", 1, {"raw_body": LAUGHS}),
        Case("wrong_relates_to", KILL, "protocol", 1, {"relates_to": "uuid:00000000-0000-0000-0000-000000000000"}),
        Case("wrong_action", KILL, "protocol", 1, {"action": "http://schemas.dmtf.org/wbem/wsman/1/wsman/Other"}),
        Case("missing_return_value", KILL, "protocol", 1, {"reply": no_rv}),
        Case("non_numeric_return_value", KILL, "protocol", 1, {"reply": bad_rv}),
        Case("corrupted_encrypted_payload", KILL, "protocol", 1, {"corrupt": "payload"}),
        Case("corrupted_signature", KILL, "protocol", 1, {"corrupt": "signature"}),
        Case("http_503", KILL, "protocol", 1, {"status": 503, "raw_body": ""}),
        Case("empty_500", KILL, "protocol", 1, {"status": 500, "raw_body": ""}),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def pki_set(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("matrix-pki")
    return {
        "ok": make_pki(base / "ok"),
        "other": make_pki(base / "other"),
        "wrong_name": make_pki(base / "wrong", names=("node9.example.test",)),
    }


@pytest.fixture
def run_case(users_file: Path, pki_set):  # type: ignore[no-untyped-def]
    started: list[FakeWinRMServer] = []

    def run(case: Case) -> tuple[subprocess.CompletedProcess[str], FakeWinRMServer | None]:
        args = ["--output", "json", "-u", "alice", *TIMEOUTS]
        if case.server.get("refuse"):
            args += ["--scheme", "http"]
            target, server = f"127.0.0.1:{free_port()}", None
        else:
            options = {k: v for k, v in case.server.items() if k != "refuse"}
            if case.https:
                pki = pki_set["wrong_name"] if case.https == "wrong_name" else pki_set["ok"]
                options["tls"] = pki.server_context()
                trusted = pki_set["other"] if case.https == "unknown_ca" else pki
                args += ["--ca-trust", str(trusted.ca_cert)]
            else:
                args += ["--scheme", "http"]
            server = FakeWinRMServer(SCENARIOS, users_file=users_file, **options).start()
            started.append(server)
            if case.injection:
                server.inject_next(**case.injection)
            target = f"127.0.0.1:{server.port}"
        command = [a.replace("{host}", target) for a in case.command]
        try:
            proc = hvjob(*args, *command, password=case.password, timeout=HANG_GUARD_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{case.name}: hung past the {HANG_GUARD_S} s guard")
        return proc, server

    yield run
    for server in started:
        server.stop()


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.name)
def test_fault_matrix(case: Case, run_case) -> None:  # type: ignore[no-untyped-def]
    proc, server = run_case(case)
    assert proc.returncode == case.exit_code, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)["results"][0]
    if case.error_type is None:
        assert result["status"] == "ok" and result["error"] is None, result
    else:
        assert result["error"]["type"] == case.error_type, result["error"]
        assert result["status"] == ("unreachable" if case.exit_code == 3 else "failed")
    if case.name == "idle_close_between_polls":
        assert server is not None and server.stats.connections >= 2  # reconnected, transparently


def _captured_fault_cases() -> list[Any]:
    return [pytest.param(name, id=name.removesuffix(".xml")) for name in sorted(CAPTURED_FAULTS)]


@pytest.mark.parametrize("name", _captured_fault_cases())
def test_every_captured_fault_answering_killjob(name: str, run_case) -> None:  # type: ignore[no-untyped-def]
    body = (real_responses_dir() / name).read_text(encoding="utf-8")
    _cls, subcode, wsman_code, *_ = CAPTURED_FAULTS[name]
    proc, _ = run_case(Case(name, KILL, None, 1, {"reply": body}))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    error = json.loads(proc.stdout)["results"][0]["error"]
    timed_out = subcode == "w:TimedOut"
    assert error["type"] == ("outcome_unknown" if timed_out else "wsman_fault"), error
    assert error["wsman_code"] == wsman_code and error["fault_subcode"] == subcode


def test_in_a_fanout_every_other_host_completes(users_file: Path) -> None:
    faults: list[dict[str, Any]] = [
        {"close": "mid_response"},
        {"body": "malformed"},
        {"latency_ms": 4000},
        {"corrupt": "payload"},
    ]
    servers = [FakeWinRMServer(SCENARIOS, users_file=users_file).start() for _ in range(len(faults) + 3)]
    try:
        for server, fault in zip(servers, faults, strict=False):
            server.inject_next(**fault)
        hosts = [f"127.0.0.1:{s.port}" for s in servers] + [f"127.0.0.1:{free_port()}"]
        proc = hvjob("--output", "json", "-u", "alice", "--scheme", "http", *TIMEOUTS, "kill", *hosts, "--job", KILLABLE,
                     timeout=HANG_GUARD_S)  # fmt: skip
    finally:
        for server in servers:
            server.stop()
    assert proc.returncode == 3  # one host unreachable
    doc = json.loads(proc.stdout)
    by_host = {r["host"]: r for r in doc["results"]}
    assert list(by_host) == hosts  # every host reported, in order
    types = [by_host[h]["error"] and by_host[h]["error"]["type"] for h in hosts]
    assert types == ["outcome_unknown", "protocol", "outcome_unknown", "protocol", None, None, None, "connection"]
    assert doc["summary"] == {"ok": 3, "failed": 4, "unreachable": 1, "job_found_on": hosts[4:7]}
