"""Kerberos against a real MIT KDC started on loopback for this test run.

The KDC comes from Debian's krb5-kdc (``.ci/run`` installs it). A machine without it skips these
tests with the reason; CI sets ``HVJOB_REQUIRE_KDC=1`` so that there a missing KDC fails instead.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import JOB_URI, SCENARIOS, job_id
from hvjob import errors
from hvjob.jobs import JobClient
from hvjob.testing import FakeWinRMServer
from hvjob.testing.kdc import MiniKDC, missing_tools
from hvjob.transport import ConnectionOptions, WsmanSession
from hvjob.wire import build
from hvjob.wire.parse import CimInstance, MethodOutput


def _kerberos_libraries_missing() -> str | None:
    try:
        import gssapi  # noqa: F401  (pyspnego's Kerberos, client and acceptor)
        import krb5  # noqa: F401  (pyspnego needs it beside gssapi)
    except ImportError as exc:
        return f"Kerberos Python libraries missing: {exc}"
    return None


@pytest.fixture(scope="module")
def kdc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniKDC]:
    reason = _kerberos_libraries_missing() or (
        "MIT KDC not installed: " + ", ".join(missing_tools()) if missing_tools() else None
    )
    if reason:
        if os.environ.get("HVJOB_REQUIRE_KDC") == "1":
            pytest.fail(reason + " (HVJOB_REQUIRE_KDC=1)")
        pytest.skip(reason)
    with MiniKDC(tmp_path_factory.mktemp("kdc")) as realm, realm.activated():
        realm.kinit()
        yield realm


@pytest.fixture
def kerberos_server(kdc: MiniKDC) -> Iterator[FakeWinRMServer]:
    with FakeWinRMServer(SCENARIOS, auth=("negotiate",), keytab=kdc.keytab) as server:
        yield server


def kerberos_options(kdc: MiniKDC, **kw: object) -> ConnectionOptions:
    base: dict[str, object] = {
        "transport": "kerberos",
        "scheme": "http",
        "spn_hostname": kdc.host_name,
        "connect_timeout": 5,
        "operation_timeout": 5,
        "read_timeout_margin": 2,
    }
    base.update(kw)
    return ConnectionOptions(**base)  # type: ignore[arg-type]


def get(session: WsmanSession) -> object:
    return session.send(build.build_get(session.header_options, JOB_URI, {"InstanceID": job_id(0x300)}))


def test_ticket_cache_http_with_message_encryption(kdc: MiniKDC, kerberos_server: FakeWinRMServer) -> None:
    # No password anywhere: the ticket from kinit is used, as on a domain-joined management host.
    with WsmanSession(f"127.0.0.1:{kerberos_server.port}", kerberos_options(kdc)) as session:
        instance = get(session)
        assert isinstance(instance, CimInstance) and instance["InstanceID"] == job_id(0x300)
        out = session.send(
            build.build_invoke(
                session.header_options, JOB_URI, "KillJob", {"DeleteOnKill": False}, {"InstanceID": job_id(0x100)}
            )
        )
        assert isinstance(out, MethodOutput) and out.return_value == 0
    assert kerberos_server.stats.auth_handshakes == 1
    assert kerberos_server.stats.connections == 1


def test_kerberos_over_https(kdc: MiniKDC, pki) -> None:  # type: ignore[no-untyped-def]
    with FakeWinRMServer(SCENARIOS, auth=("negotiate",), keytab=kdc.keytab, tls=pki.server_context()) as server:
        opts = kerberos_options(kdc, scheme="https", ca_trust_path=str(pki.ca_cert))
        with WsmanSession(server.url, opts) as session:
            assert isinstance(get(session), CimInstance)


def test_explicit_principal_selects_the_cached_ticket(kdc: MiniKDC, kerberos_server: FakeWinRMServer) -> None:
    opts = kerberos_options(kdc, username=kdc.principal)
    with WsmanSession(f"127.0.0.1:{kerberos_server.port}", opts) as session:
        assert isinstance(get(session), CimInstance)


def test_wrong_spn_host_name_is_an_authentication_error(kdc: MiniKDC, kerberos_server: FakeWinRMServer) -> None:
    # The classic failure: the SPN built from the connection name has no key in the realm.
    opts = kerberos_options(kdc, spn_hostname="no-such-node.hvjob.test")
    with WsmanSession(f"127.0.0.1:{kerberos_server.port}", opts) as session:
        with pytest.raises(errors.AuthenticationFailed) as info:
            get(session)
    assert info.value.unreachable
    assert "kerberos" in str(info.value).lower()


@pytest.fixture
def no_ticket_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A management host that never ran kinit: the ticket cache names a file that does not exist."""
    empty = tmp_path / "empty-ccache"
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{empty}")
    return empty


def test_no_ticket_and_no_password_says_to_run_kinit(
    kdc: MiniKDC, kerberos_server: FakeWinRMServer, no_ticket_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with WsmanSession(f"127.0.0.1:{kerberos_server.port}", kerberos_options(kdc)) as session:
        with pytest.raises(errors.AuthenticationFailed) as info:
            get(session)
    assert "run kinit, or give a password" in info.value.message
    assert info.value.unreachable and kerberos_server.stats.requests == 0  # nothing reached the node
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]  # no traceback logged


def test_a_password_without_a_ticket_cache_gets_credentials_from_the_kdc(
    kdc: MiniKDC, kerberos_server: FakeWinRMServer, no_ticket_cache: Path
) -> None:
    # As pypsrp does: GSSAPI credentials acquired from the password into memory, the cache untouched.
    opts = kerberos_options(kdc, username=kdc.principal, password=kdc.password)
    with WsmanSession(f"127.0.0.1:{kerberos_server.port}", opts) as session:
        assert isinstance(get(session), CimInstance)
        assert isinstance(get(session), CimInstance)
    assert kerberos_server.stats.auth_handshakes == 1
    assert not no_ticket_cache.exists()


def test_a_wrong_password_is_an_authentication_error_that_does_not_show_it(
    kdc: MiniKDC, kerberos_server: FakeWinRMServer, no_ticket_cache: Path
) -> None:
    opts = kerberos_options(kdc, username=kdc.principal, password="Not-The-Kdc-Password-1")
    with WsmanSession(f"127.0.0.1:{kerberos_server.port}", opts) as session:
        with pytest.raises(errors.AuthenticationFailed) as info:
            get(session)
    assert "Not-The-Kdc-Password-1" not in str(info.value) + repr(info.value)
    assert kerberos_server.stats.requests == 0


def test_a_fresh_kerberos_kill_is_two_exchanges_over_http(kdc: MiniKDC, kerberos_server: FakeWinRMServer) -> None:
    # The AP-REQ rides on the first request and the AP-REP on its 200: one leg, then the KillJob.
    with WsmanSession(f"127.0.0.1:{kerberos_server.port}", kerberos_options(kdc)) as session:
        assert JobClient(session).kill(job_id(0x100)).ok
    assert kerberos_server.stats.requests == 2


def test_cli_without_ticket_or_password_fails_cleanly(
    kdc: MiniKDC, kerberos_server: FakeWinRMServer, no_ticket_cache: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HVJOB_PASSWORD"}  # KRB5CCNAME: the missing cache
    args = ["--transport", "kerberos", "--scheme", "http", "--spn-hostname", kdc.host_name, "--output", "json"]
    target = ["kill", f"127.0.0.1:{kerberos_server.port}", "--job", job_id(0x100)]
    proc = subprocess.run(
        [sys.executable, "-c", "from hvjob.cli import run_cli; run_cli()", "-vv", *args, *target],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 3, proc.stderr  # unreachable: authentication
    error = json.loads(proc.stdout)["results"][0]["error"]
    assert error["type"] == "authentication" and "run kinit, or give a password" in error["message"]
    assert "Traceback" not in proc.stderr


def test_cli_kerberos_kill_with_ticket_cache_and_no_password(kdc: MiniKDC, kerberos_server: FakeWinRMServer) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HVJOB_PASSWORD"}  # KRB5_* from the realm
    args = ["--transport", "kerberos", "--scheme", "http", "--spn-hostname", kdc.host_name, "--output", "json"]
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from hvjob.cli import run_cli; run_cli()",
            *args,
            "kill",
            f"127.0.0.1:{kerberos_server.port}",
            "--job",
            job_id(0x100),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)["results"][0]
    assert (result["status"], result["method"], result["return_value"]) == ("ok", "KillJob", 0)
    assert kdc.password not in proc.stdout + proc.stderr
