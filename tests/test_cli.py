"""The real ``hvjob`` entry point in a subprocess against the fake server."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CANARY_PASSWORD, ROOT, SCENARIOS, job_id
from hvjob.testing import FakeWinRMServer

HVJOB = [sys.executable, "-c", "from hvjob.cli import run_cli; run_cli()"]


def hvjob(
    *args: str, password: str | None = CANARY_PASSWORD, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HVJOB_PASSWORD"}
    if password is not None:
        env["HVJOB_PASSWORD"] = password
    proc = subprocess.run(
        [*HVJOB, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        input=stdin.decode() if stdin else None,
    )
    assert CANARY_PASSWORD not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def http_args(server: FakeWinRMServer) -> list[str]:
    return ["--scheme", "http", "-u", "alice"]


def host(server: FakeWinRMServer) -> str:
    return f"127.0.0.1:{server.port}"


def as_json(proc: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(proc.stdout)


def invokes(server: FakeWinRMServer) -> list[str]:
    return [a.rsplit("/", 1)[-1] for a, _ in server.stats.served if a and "/wmi/" in a]


def test_stop_text_then_json_unchanged(http_server: FakeWinRMServer) -> None:
    first = hvjob(*http_args(http_server), "stop", host(http_server), "--job", job_id(0x300), "--wait")
    assert first.returncode == 0, first.stderr
    assert re.search(r"ok\s+yes\s+RequestStateChange\s+0 Completed\s+Killed", first.stdout)
    second = hvjob(*http_args(http_server), "--output", "json", "stop", host(http_server), "--job", job_id(0x300))
    doc = as_json(second)
    assert second.returncode == 0
    assert doc["command"] == "stop" and doc["summary"] == {
        "ok": 1,
        "failed": 0,
        "unreachable": 0,
        "job_found_on": [host(http_server)],
    }
    result = doc["results"][0]
    assert result["changed"] is False and result["job_state"] == "Killed" and result["error"] is None
    assert set(result) >= {
        "host",
        "status",
        "changed",
        "job",
        "method",
        "return_value",
        "return_name",
        "job_state",
        "error",
        "elapsed_ms",
    }


def test_kill_failure_exit_1_with_seed_words(http_server: FakeWinRMServer) -> None:
    proc = hvjob(*http_args(http_server), "--output", "jsonl", "kill", host(http_server), "--job", job_id(0x104))
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0]["return_value"] == 4 and lines[0]["return_name"] == "Failed"
    assert lines[0]["status"] == "failed" and lines[0]["error"]["type"] == "method"
    assert lines[-1]["summary"]["failed"] == 1


def test_fault_fields_in_json(http_server: FakeWinRMServer) -> None:
    proc = hvjob(*http_args(http_server), "--output", "json", "stop", host(http_server), "--job", job_id(0x334))
    assert proc.returncode == 1
    error = as_json(proc)["results"][0]["error"]
    assert error == {
        "type": "wsman_fault",
        "message": "Generic failure",
        "wsman_code": 2150859081,
        "wmi_code": 2147749889,
        "fault_subcode": "w:InternalError",
        "machine": "HVNODE01.contoso.test",
        "reporting_machine": None,
    }


def test_unreachable_and_partial_fanout(http_server: FakeWinRMServer) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    proc = hvjob(*http_args(http_server), "--output", "json", "stop", host(http_server), dead, "--job", job_id(0x331))
    assert proc.returncode == 3
    doc = as_json(proc)
    assert [r["status"] for r in doc["results"]] == ["ok", "unreachable"]
    assert doc["results"][1]["error"]["type"] == "connection"
    assert doc["summary"]["job_found_on"] == []


def test_wrong_password_is_unreachable_and_never_printed(http_server: FakeWinRMServer) -> None:
    proc = hvjob(
        *http_args(http_server),
        "-vv",
        "--output",
        "json",
        "show",
        host(http_server),
        "--job",
        job_id(0x300),
        password=CANARY_PASSWORD + "-wrong",
    )
    assert proc.returncode == 3
    assert as_json(proc)["results"][0]["error"]["type"] == "authentication"


@pytest.mark.parametrize(
    "args",
    [
        ["stop", "h1"],  # neither --job nor --all
        ["stop", "h1", "--all"],  # --all without --yes
        ["--resolve", "bad", "show", "h1", "--job", "x"],
        ["--scheme", "http", "--transport", "basic", "show", "h1", "--job", "x"],
        ["list", "h1", "--state", "Sleeping"],
        ["--inventory", "/nonexistent/inv.ini", "list"],
        ["--password-file", "/nonexistent/pw", "list", "h1"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    proc = hvjob("-u", "alice", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr


def test_no_password_off_a_terminal_is_a_usage_error() -> None:
    proc = hvjob("-u", "alice", "show", "h1", "--job", "x", password=None)
    assert proc.returncode == 2 and "HVJOB_PASSWORD" in proc.stderr


def test_check_sends_nothing_mutating(http_server: FakeWinRMServer) -> None:
    proc = hvjob(
        *http_args(http_server), "--check", "--output", "json", "stop", host(http_server), "--job", job_id(0x300)
    )
    assert proc.returncode == 0
    assert as_json(proc)["results"][0]["changed"] is True
    assert invokes(http_server) == []


def test_dry_run_is_offline() -> None:
    proc = hvjob("--scheme", "http", "-u", "alice", "--dry-run", "kill", "node1.example.test", "--job", "J<1>")
    assert proc.returncode == 0
    assert "KillJob_INPUT" in proc.stdout and "J&lt;1&gt;" in proc.stdout and "node1.example.test:5985" in proc.stdout


def test_list_and_stop_all(http_server: FakeWinRMServer) -> None:
    proc = hvjob(*http_args(http_server), "--output", "json", "list", host(http_server))
    assert len(as_json(proc)["results"][0]["jobs"]) == 5
    proc = hvjob(
        *http_args(http_server), "--output", "json", "stop", host(http_server), "--all", "--yes", "--state", "running"
    )
    result = as_json(proc)["results"][0]
    assert [j["job"] for j in result["jobs"]] == [job_id(0x400), job_id(0x401), job_id(0x404)]


def test_wait_errors_show_identify(http_server: FakeWinRMServer) -> None:
    doc = as_json(
        hvjob(
            *http_args(http_server),
            "--output",
            "json",
            "wait",
            host(http_server),
            "--job",
            job_id(0x360),
            "--timeout",
            "30",
        )
    )
    assert doc["results"][0]["succeeded"] is True and doc["results"][0]["properties"]["JobState"] == "7"
    doc = as_json(
        hvjob(*http_args(http_server), "--output", "json", "errors", host(http_server), "--job", job_id(0x371))
    )
    assert len(doc["results"][0]["errors"]) == 2
    doc = as_json(hvjob(*http_args(http_server), "--output", "json", "show", host(http_server), "--job", job_id(0x360)))
    assert doc["results"][0]["properties"]["InstanceID"] == job_id(0x360)
    for extra in ([], ["--anonymous"]):
        doc = as_json(hvjob(*http_args(http_server), "--output", "json", "identify", host(http_server), *extra))
        assert doc["results"][0]["identity"]["product_vendor"] == "Microsoft Corporation"


def test_https_with_generated_ca(https_server: FakeWinRMServer, pki) -> None:  # type: ignore[no-untyped-def]
    proc = hvjob(
        "-u",
        "alice",
        "--ca-trust",
        str(pki.ca_cert),
        "--port",
        str(https_server.port),
        "--output",
        "json",
        "kill",
        "127.0.0.1",
        "--job",
        job_id(0x100),
    )
    assert proc.returncode == 0 and as_json(proc)["results"][0]["return_name"] == "Success"
    proc = hvjob(
        "-u", "alice", "--port", str(https_server.port), "--output", "json", "kill", "127.0.0.1", "--job", job_id(0x100)
    )
    assert proc.returncode == 3 and as_json(proc)["results"][0]["error"]["type"] == "tls"


def test_cluster_discovery_acts_once(http_server: FakeWinRMServer) -> None:
    where = host(http_server)
    resolve = [arg for n in (1, 2, 3) for arg in ("--resolve", f"HVNODE0{n}={where}")]
    proc = hvjob(
        *http_args(http_server), *resolve, "--cluster", "--output", "json", "stop", where, "--job", job_id(0x500)
    )
    assert proc.returncode == 0, proc.stdout
    doc = as_json(proc)
    assert [r["host"] for r in doc["results"]] == ["HVNODE01", "HVNODE02", "HVNODE03"]
    assert [r["changed"] for r in doc["results"]] == [True, False, False]
    assert invokes(http_server) == ["RequestStateChange"]


def test_inventory(http_server: FakeWinRMServer, tmp_path: Path) -> None:
    pytest.importorskip("ansible", reason="ansible-core (hvjob[ansible]) not installed")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[hyperv]\nnode1 ansible_host=127.0.0.1 ansible_port=%d\n\n[hyperv:vars]\nansible_user=alice\n"
        "ansible_password=%s\nansible_winrm_scheme=http\n" % (http_server.port, CANARY_PASSWORD)
    )
    proc = hvjob(
        "--inventory", str(inventory), "--output", "json", "kill", "hyperv", "--job", job_id(0x100), password=None
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert as_json(proc)["results"][0]["host"] == "node1"


def test_decode(tmp_path: Path) -> None:
    fault = ROOT.parent / "shared/reference/real-responses/omi_TestTimeoutResponse.xml"
    junk = tmp_path / "junk.txt"
    junk.write_text("not xml")
    if fault.exists():
        proc = hvjob("decode", str(fault))
        doc = json.loads(proc.stdout)
        assert proc.returncode == 0 and doc["kind"] == "fault" and doc["wsman_code"] == 2150858793
    proc = hvjob("decode", str(junk))
    assert proc.returncode == 1 and json.loads(proc.stdout)["error"]["type"] == "protocol"
    body = b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><p:X_OUTPUT xmlns:p="u"><p:ReturnValue>4096</p:ReturnValue></p:X_OUTPUT></s:Body></s:Envelope>'
    proc = hvjob("decode", "-", stdin=body)
    assert json.loads(proc.stdout)["return_value"] == 4096


def test_version() -> None:
    proc = hvjob("--version")
    assert proc.returncode == 0 and "hvjob" in proc.stdout


def test_docs_cover_every_command_and_option() -> None:
    from click.testing import CliRunner

    from hvjob.cli import main

    docs = (ROOT / "docs" / "cli.md").read_text()
    runner = CliRunner()
    for command in [None, *main.commands]:
        args = [command, "--help"] if command else ["--help"]
        text = runner.invoke(main, args).output
        options = set(re.findall(r"(--[a-z][a-z-]+)", text)) - {"--help"}
        missing = sorted(o for o in options if o not in docs)
        assert not missing, f"docs/cli.md lacks {missing} of {command or 'global options'}"
        if command:
            assert f"### {command}" in docs


def test_serve_help_runs() -> None:
    proc = hvjob("serve", "--help")
    assert proc.returncode == 0 and "--users" in proc.stdout


def test_scenarios_dir_exists() -> None:
    assert SCENARIOS.is_dir()


def _start_serve(tmp_path: Path, users_file: Path, *extra: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [*HVJOB, "serve", "--port", "0", "--users", str(users_file), "--pki-dir", str(tmp_path / "pki"), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict[str, str] = {}
    assert proc.stderr is not None
    for line in proc.stderr:
        key, _, value = line.partition(": ") if ": " in line else ("", "", "")
        if line.startswith("hvjob fake WinRM server on "):
            seen["url"] = line.split()[5]
            break
        if key:
            seen.setdefault(key, value.split()[0])
    return proc, seen


def test_serve_https_issues_client_certificates_that_authenticate(tmp_path: Path, users_file: Path) -> None:
    proc, seen = _start_serve(tmp_path, users_file, "--https", "--auth", "negotiate,certificate")
    try:
        assert seen["url"].startswith("https://127.0.0.1:")
        key = seen["client certificate"].replace(".pem", "-key.pem")
        result = hvjob(
            "--transport",
            "certificate",
            "--cert-pem",
            seen["client certificate"],
            "--cert-key-pem",
            key,
            "--ca-trust",
            seen["CA certificate"],
            "--output",
            "json",
            "kill",
            seen["url"],
            "--job",
            job_id(1),
            password=None,
        )
        assert result.returncode == 0, result.stderr
        assert as_json(result)["results"][0]["return_name"] == "Success"
        ntlm = hvjob("-u", "alice", "--ca-trust", seen["CA certificate"], "show", seen["url"], "--job", job_id(1))
        assert ntlm.returncode == 0, ntlm.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--auth", "kerberos5"], "unknown --auth scheme: kerberos5"), (["--auth", "certificate"], "needs --https")],
)
def test_serve_refuses_bad_auth_options(tmp_path: Path, users_file: Path, args: list[str], message: str) -> None:
    proc = hvjob("serve", "--port", "0", "--users", str(users_file), *args)
    assert proc.returncode == 2 and message in proc.stderr
