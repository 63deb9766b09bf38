"""The real ``hvjob`` entry point in a subprocess: options, output, errors, hints; one-off answers
from scenario replay (what a stateful run checks against ground truth is in test_cli_sim.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import CANARY_PASSWORD, ROOT, job_id, real_responses_dir
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


def as_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def invokes(server: FakeWinRMServer) -> list[str]:
    return [a.rsplit("/", 1)[-1] for a, _ in server.stats.served if a and "/wmi/" in a]


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


@pytest.mark.parametrize("password", [None, ""], ids=["unset", "empty"])
def test_no_password_off_a_terminal_is_a_usage_error(password: str | None) -> None:
    proc = hvjob("-u", "alice", "show", "h1", "--job", "x", password=password)
    assert proc.returncode == 2 and "no password" in proc.stderr and "HVJOB_PASSWORD" in proc.stderr
    assert ("it is set, but empty" in proc.stderr) is (password == "")


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_password_in_a_host_url_is_refused_and_never_printed(output: str) -> None:
    url = f"http://alice:{CANARY_PASSWORD}@127.0.0.1:1/wsman"  # hvjob() fails the test if the canary shows
    proc = hvjob("--scheme", "http", "-u", "alice", "--output", output, "list", url)
    assert (
        proc.returncode == 2 and "http://***@127.0.0.1:1/wsman: a host must not carry user information" in proc.stderr
    )


def test_dry_run_is_offline() -> None:
    proc = hvjob("--scheme", "http", "-u", "alice", "--dry-run", "kill", "node1.example.test", "--job", "J<1>")
    assert proc.returncode == 0
    assert "KillJob_INPUT" in proc.stdout and "J&lt;1&gt;" in proc.stdout and "node1.example.test:5985" in proc.stdout


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


def test_decode_a_real_capture() -> None:
    fault = real_responses_dir() / "omi_TestTimeoutResponse.xml"
    proc = hvjob("decode", str(fault))
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["kind"] == "fault" and doc["wsman_code"] == 2150858793


def test_decode(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("not xml")
    proc = hvjob("decode", str(junk))
    assert proc.returncode == 1 and json.loads(proc.stdout)["error"]["type"] == "protocol"
    body = b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><p:X_OUTPUT xmlns:p="u"><p:ReturnValue>4096</p:ReturnValue></p:X_OUTPUT></s:Body></s:Envelope>'
    proc = hvjob("decode", "-", stdin=body)
    assert json.loads(proc.stdout)["return_value"] == 4096


def test_decode_types_the_properties_of_a_known_class() -> None:
    def instance(cls: str) -> bytes:
        uri = f"http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/{cls}"
        return (
            f'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><p:{cls} xmlns:p="{uri}">'
            f"<p:JobState>4</p:JobState><p:Cancellable>true</p:Cancellable><p:Caption>Export</p:Caption>"
            f"</p:{cls}></s:Body></s:Envelope>"
        ).encode()

    known = json.loads(hvjob("decode", "-", stdin=instance("Msvm_ConcreteJob")).stdout)
    assert known["properties"] == {"JobState": 4, "Cancellable": True, "Caption": "Export"}
    unknown = json.loads(hvjob("decode", "-", stdin=instance("Contoso_Thing")).stdout)
    assert unknown["properties"] == {"JobState": "4", "Cancellable": "true", "Caption": "Export"}


def test_a_ctrl_c_while_the_process_exits_ends_it_quietly_with_130() -> None:
    # The SIGINT lands in an exit handler, as one may in logging's flush or a thread pool's join.
    code = (
        "import atexit, os, signal, sys, time; from hvjob.cli import run_cli;"
        "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(5)));"
        "sys.argv = ['hvjob', '--version']; run_cli()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130 and "hvjob" in proc.stdout, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


def test_version() -> None:
    proc = hvjob("--version")
    assert proc.returncode == 0 and "hvjob" in proc.stdout


def test_docs_cover_every_command_and_option() -> None:
    import click
    from click.testing import CliRunner

    from hvjob.cli import main

    docs = (ROOT / "docs" / "cli.md").read_text()
    runner = CliRunner()
    for command in [None, *main.list_commands(click.Context(main))]:
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


# --- issue 12: what a newcomer met -----------------------------------------------------------------

NTLM_TOKEN = re.compile(r"TlRMTVNT[A-Za-z0-9+/=]{8,}|NTLMSSP|Negotiate [A-Za-z0-9+/=]{16,}")


def test_vv_shows_soap_and_nothing_of_authentication(http_server: FakeWinRMServer) -> None:
    proc = hvjob(*http_args(http_server), "-vv", "show", host(http_server), "--job", job_id(0x360))
    assert proc.returncode == 0, proc.stderr
    assert "hvjob: DEBUG:" in proc.stderr and "<s:Envelope" in proc.stderr  # the SOAP after decryption
    assert not NTLM_TOKEN.search(proc.stderr), "an NTLM token reached the log"
    assert "Authorization" not in proc.stderr and "NTLM step" not in proc.stderr
    assert "urllib3" not in proc.stderr  # third-party loggers stay at WARNING


def test_a_third_party_logger_only_when_asked_for_by_name(http_server: FakeWinRMServer) -> None:
    proc = hvjob(*http_args(http_server), "--debug-logger", "urllib3", "show", host(http_server), "--job", job_id(1))
    assert "hvjob: urllib3.connectionpool: DEBUG:" in proc.stderr
    assert "may show authentication tokens" in proc.stderr


def test_a_missing_user_name_is_a_usage_error() -> None:
    proc = hvjob("--scheme", "http", "show", "h1", "--job", "x")  # a password is set, no -u
    assert proc.returncode == 2 and "no user name" in proc.stderr and "HVJOB_USERNAME" in proc.stderr


def test_the_user_name_can_come_from_the_environment(http_server: FakeWinRMServer) -> None:
    os.environ["HVJOB_USERNAME"] = "alice"
    try:
        proc = hvjob("--scheme", "http", "--output", "json", "show", host(http_server), "--job", job_id(0x360))
    finally:
        del os.environ["HVJOB_USERNAME"]
    assert proc.returncode == 0, proc.stderr


def test_a_typed_option_beats_the_inventory_even_when_it_is_the_default(
    http_server: FakeWinRMServer, tmp_path: Path
) -> None:
    pytest.importorskip("ansible", reason="ansible-core (hvjob[ansible]) not installed")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[hyperv]\nnode1 ansible_host=127.0.0.1 ansible_port=%d ansible_user=alice ansible_winrm_scheme=http\n"
        % http_server.port
    )
    plain = hvjob("--inventory", str(inventory), "--output", "json", "show", "node1", "--job", job_id(0x360))
    assert plain.returncode == 0, plain.stderr  # the inventory's http
    typed = hvjob(
        "--inventory", str(inventory), "--scheme", "https", "--output", "json", "show", "node1", "--job", job_id(1)
    )
    assert typed.returncode == 3 and as_json(typed)["results"][0]["error"]["type"] == "tls"  # https, as typed


def test_job_found_on_counts_every_host_that_read_the_job(http_server: FakeWinRMServer) -> None:
    late = hvjob(*http_args(http_server), "--output", "json", "wait", host(http_server), "--job", job_id(0x362),
                 "--timeout", "0.2")  # fmt: skip
    doc = as_json(late)
    assert late.returncode == 4 and doc["results"][0]["error"]["type"] == "wait_timeout"
    assert doc["summary"]["job_found_on"] == [host(http_server)]
    failed = hvjob(*http_args(http_server), "--output", "json", "errors", host(http_server), "--job", job_id(0x372))
    doc = as_json(failed)
    assert failed.returncode == 1 and doc["results"][0]["error"]["type"] == "method"
    assert doc["summary"]["job_found_on"] == [host(http_server)]


def test_wait_on_a_typo_is_not_found(http_server: FakeWinRMServer) -> None:
    for extra in ([], ["--require-success"]):
        proc = hvjob(
            *http_args(http_server), "--output", "json", "wait", host(http_server), "--job", "5F3C-typo", *extra
        )
        result = as_json(proc)["results"][0]
        assert proc.returncode == 1 and result["gone"] is True and result["found"] is False


def test_insecure_warns_once_per_run(https_server: FakeWinRMServer) -> None:
    hosts = [f"127.0.0.1:{https_server.port}", f"localhost:{https_server.port}"]
    proc = hvjob("-u", "alice", "--insecure", "--output", "json", "show", *hosts[:1], "--job", job_id(0x360))
    assert proc.stderr.count("not validating") == 1, proc.stderr
    proc = hvjob("-u", "alice", "--insecure", "--output", "json", "kill", *hosts, "--job", job_id(0x100))
    assert proc.stderr.count("not validating") == 1 and "2 host(s)" in proc.stderr, proc.stderr


def test_a_global_option_after_the_command_gets_a_hint() -> None:
    proc = hvjob("-u", "alice", "list", "h1", "--scheme", "http")
    assert proc.returncode == 2
    assert "--scheme is a global option: put it before the command (hvjob --scheme SCHEME list ...)" in proc.stderr
    proc = hvjob("-u", "alice", "stop", "--cluster", "h1", "--job", "x")
    assert proc.returncode == 2
    assert "(hvjob --cluster stop ...)" in proc.stderr, proc.stderr  # a flag: no value shown after it


def test_https_against_an_http_listener_gets_a_hint(http_server: FakeWinRMServer) -> None:
    proc = hvjob("-u", "alice", "show", host(http_server), "--job", job_id(0x360))
    assert proc.returncode == 3
    assert "try --scheme http" in proc.stderr


def test_an_https_url_to_an_http_listener_gets_a_hint_about_the_url(http_server: FakeWinRMServer) -> None:
    proc = hvjob("-u", "alice", "show", f"https://{host(http_server)}/wsman", "--job", job_id(0x360))
    assert proc.returncode == 3 and "write http:// in the URL" in proc.stderr and "--scheme" not in proc.stderr


def test_plain_http_to_an_https_listener_gets_a_hint(https_server: FakeWinRMServer) -> None:
    proc = hvjob("--scheme", "http", "-u", "alice", "show", host(https_server), "--job", job_id(0x360))
    assert proc.returncode == 3, proc.stderr
    assert "connection reset by the server" in proc.stdout and "ConnectionResetError" not in proc.stdout
    assert "is this one HTTPS? try --scheme https" in proc.stderr


def test_a_transport_the_host_does_not_offer_gets_a_transport_hint(http_server: FakeWinRMServer) -> None:
    proc = hvjob("--scheme", "http", "-u", "alice", "--transport", "credssp", "show", host(http_server), "--job", "x")
    assert proc.returncode == 3, proc.stderr
    assert "choose another --transport" in proc.stderr and "password" not in proc.stderr


def test_unencrypted_messages_refused_get_a_hint(http_server: FakeWinRMServer) -> None:
    proc = hvjob("--scheme", "http", "-u", "alice", "--allow-unencrypted", "--message-encryption", "never",
                 "show", host(http_server), "--job", job_id(0x360))  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "drop --message-encryption never" in proc.stderr


def test_connection_refused_gets_a_hint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    proc = hvjob("--scheme", "http", "-u", "alice", "show", dead, "--job", "x")
    assert proc.returncode == 3 and "check the host and port" in proc.stderr


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "0.2s"), (12.5, "12.5s"), (59.96, "1m0s"), (252.5, "4m12s"), (610, "10m10s"), (7200.7, "2h0m0s")],
)
def test_durations_read_alike_in_a_column(seconds: float, text: str) -> None:
    from hvjob.cli.output import duration

    assert duration(seconds) == text


def test_show_prints_the_useful_properties(http_server: FakeWinRMServer) -> None:
    proc = hvjob(*http_args(http_server), "show", host(http_server), "--job", job_id(0x360))
    out = proc.stdout
    for line in ("JobState +Running \\(4\\)", "PercentComplete +50", "Owner +CONTOSO\\\\backup-svc",
                 "StartTime +2026-11-25 03:02:11Z", "ElapsedTime +4m12s", "Cancellable +true"):  # fmt: skip
        assert re.search(line, out), (line, out)
    assert "Caption" not in out  # the rest with -v
    assert "Caption" in hvjob(*http_args(http_server), "-v", "show", host(http_server), "--job", job_id(0x361)).stdout
    failed = hvjob(*http_args(http_server), "show", host(http_server), "--job", job_id(0x361)).stdout
    assert re.search("ErrorDescription +The export operation failed", failed)


def test_list_is_a_table_with_a_header_and_the_summary_last(http_server: FakeWinRMServer) -> None:
    lines = hvjob(*http_args(http_server), "list", host(http_server)).stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("NODE"))
    assert re.match(r"NODE\s+JOB\s+STATE\s+PERCENT\s+STARTED\s+ELAPSED\s+OWNER\s+NAME$", lines[header])
    rows = lines[header + 1 : header + 6]
    assert all(job_id(0x400 + i) in row for i, row in enumerate(rows))
    assert len({row.index(job_id(0x400 + i)) for i, row in enumerate(rows)}) == 1  # aligned
    assert lines[-1].startswith("ok=1 failed=0 unreachable=0")


def test_dry_run_prints_every_envelope_stop_could_send(http_server: FakeWinRMServer) -> None:
    proc = hvjob("--scheme", "http", "-u", "alice", "--dry-run", "stop", "node1.example.test", "--job", "J1", "--wait")
    assert proc.returncode == 0, proc.stderr
    headings = [line for line in proc.stdout.splitlines() if line.startswith("# ")]
    assert [h.split(", ", 1)[1].split(" (")[0] for h in headings] == [
        "Get",
        "RequestStateChange",
        "KillJob",
        "Get",  # if an answer is lost
        "Get",  # the job reference RequestStateChange may return
        "Get",  # the job itself, until terminal
    ]
    assert "Msvm_ConcreteJob" in proc.stdout.split(headings[4])[1].split("# ")[0]
    assert "if the job is running" in headings[1] and "if RequestStateChange is not supported" in headings[2]
    assert "<p:RequestedState>5</p:RequestedState>" in proc.stdout and "\n  <s:Header>" in proc.stdout  # pretty
    doc = [json.loads(line) for line in hvjob("--scheme", "http", "-u", "alice", "--output", "jsonl", "--dry-run",
                                              "stop", "n1", "--job", "J1").stdout.splitlines()]  # fmt: skip
    assert [d["request"] for d in doc] == ["Get", "RequestStateChange", "KillJob", "Get"]
    assert doc[0]["when"] is None and doc[1]["when"].startswith("if the job is running")
    whole = hvjob("--scheme", "http", "-u", "alice", "--output", "json", "--dry-run", "stop", "n1", "n2", "--job", "J1")
    plan = json.loads(whole.stdout)  # one document, as every --output json is
    assert plan["dry_run"] is True and [h["host"] for h in plan["hosts"]] == ["n1", "n2"]
    assert [r["request"] for r in plan["hosts"][1]["requests"]] == ["Get", "RequestStateChange", "KillJob", "Get"]


def test_refused_weak_settings_name_the_flag_that_allows_them() -> None:
    proc = hvjob("--scheme", "http", "--transport", "basic", "-u", "alice", "list", "h1")
    assert proc.returncode == 2
    assert "a Basic password in clear" in proc.stderr and "ask for --allow-unencrypted" in proc.stderr
    assert "allow_unencrypted" not in proc.stderr  # the library's name for it, not a flag of this command
