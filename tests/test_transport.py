"""The client transport against the fake server over real HTTP(S) with real authentication."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CANARY_NT_HASH, CANARY_PASSWORD, JOB_URI, SCENARIOS, job_id, leaks, options
from hvjob import errors
from hvjob.testing import FakeWinRMServer, make_pki
from hvjob.transport import ConnectionOptions, WsmanSession, endpoint_url, without_userinfo
from hvjob.transport.options import kerberos_available
from hvjob.wire import build
from hvjob.wire.parse import CimInstance, MethodOutput

RUNNING = job_id(0x300)  # stop_rsc_completed: Running, then Killed


def get(session: WsmanSession, jid: str = RUNNING) -> object:
    return session.send(build.build_get(session.header_options, JOB_URI, {"InstanceID": jid}))


def killjob(session: WsmanSession, jid: str) -> object:
    return session.send(
        build.build_invoke(session.header_options, JOB_URI, "KillJob", {"DeleteOnKill": False}, {"InstanceID": jid})
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait for ``condition`` (an event the server reports), not for a fixed time; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_ntlm_over_http_with_message_encryption(http_server: FakeWinRMServer) -> None:
    with WsmanSession(f"127.0.0.1:{http_server.port}", options(scheme="http")) as session:
        first = get(session)
        assert isinstance(first, CimInstance) and first["JobState"] == "4"
        out = killjob(session, job_id(0x100))
        assert isinstance(out, MethodOutput) and out.return_value == 0
    # One connection, one handshake for both requests (keep-alive).
    assert http_server.stats.connections == 1
    assert http_server.stats.auth_handshakes == 1


@pytest.mark.parametrize("transport", ["ntlm", "basic"])
def test_https_with_ca_validation(https_server: FakeWinRMServer, pki, transport: str) -> None:  # type: ignore[no-untyped-def]
    with WsmanSession(https_server.url, options(transport=transport, ca_trust_path=str(pki.ca_cert))) as session:
        result = get(session)
        assert isinstance(result, CimInstance) and result["InstanceID"] == RUNNING


def test_wrong_password_is_authentication_error(http_server: FakeWinRMServer) -> None:
    with WsmanSession(http_server.url, options(scheme="http", password="wrong")) as session:
        with pytest.raises(errors.AuthenticationFailed) as info:
            get(session)
    assert CANARY_PASSWORD not in str(info.value) and "wrong" not in repr(info.value)
    assert info.value.unreachable


def test_basic_wrong_password_over_https(https_server: FakeWinRMServer, pki) -> None:  # type: ignore[no-untyped-def]
    with (
        WsmanSession(
            https_server.url, options(transport="basic", password="nope", ca_trust_path=str(pki.ca_cert))
        ) as s,
        pytest.raises(errors.AuthenticationFailed),
    ):
        get(s)


def test_unknown_ca_is_tls_error(https_server: FakeWinRMServer, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other")
    with WsmanSession(https_server.url, options(ca_trust_path=str(other.ca_cert))) as session:
        with pytest.raises(errors.TLSFailed):
            get(session)


def test_wrong_host_name_is_tls_error(users_file: Path, tmp_path: Path) -> None:
    pki = make_pki(tmp_path, names=("node9.example.test",))
    with FakeWinRMServer(SCENARIOS, users_file=users_file, tls=pki.server_context()) as server:
        with WsmanSession(server.url, options(ca_trust_path=str(pki.ca_cert))) as session:
            with pytest.raises(errors.TLSFailed, match="(?i)hostname|match"):
                get(session)


def test_insecure_skips_validation_and_warns(https_server: FakeWinRMServer, caplog: pytest.LogCaptureFixture) -> None:
    with WsmanSession(https_server.url, options(insecure=True)) as session:
        assert isinstance(get(session), CimInstance)
    assert any("not validating" in r.message for r in caplog.records)


def test_strict_channel_binding(users_file: Path, pki) -> None:  # type: ignore[no-untyped-def]
    with FakeWinRMServer(SCENARIOS, users_file=users_file, tls=pki.server_context(), cbt="strict") as server:
        with WsmanSession(server.url, options(ca_trust_path=str(pki.ca_cert))) as session:
            assert isinstance(get(session), CimInstance)
        with WsmanSession(server.url, options(ca_trust_path=str(pki.ca_cert), send_cbt=False)) as session:
            with pytest.raises(errors.AuthenticationFailed):
                get(session)
        # Relaxed mode accepts a client that sends no bindings.
    with FakeWinRMServer(SCENARIOS, users_file=users_file, tls=pki.server_context(), cbt="relaxed") as server:
        with WsmanSession(server.url, options(ca_trust_path=str(pki.ca_cert), send_cbt=False)) as session:
            assert isinstance(get(session), CimInstance)


def test_unauthenticated_identify(http_server: FakeWinRMServer) -> None:
    import requests

    payload = build.build_identify().payload
    response = requests.post(
        http_server.url,
        data=payload,
        headers={"WSMANIDENTIFY": "unauthenticated", "Content-Type": "application/soap+xml"},
        timeout=5,
    )
    assert response.status_code == 200 and b"IdentifyResponse" in response.content
    refused = requests.post(http_server.url, data=payload, timeout=5)
    assert refused.status_code == 401 and refused.headers["Content-Length"] == "0"
    assert "Negotiate" in refused.headers["WWW-Authenticate"]


def test_idle_connection_closed_is_recovered_for_safe_requests(http_server: FakeWinRMServer) -> None:
    with WsmanSession(http_server.url, options(scheme="http")) as session:
        assert isinstance(get(session), CimInstance)
        http_server.close_idle_connections()
        wait_until(lambda: http_server.open_connections == 0, "the server to close the connection")
        again = get(session)
        assert isinstance(again, CimInstance)
        assert session.reconnects == 1
    assert http_server.stats.auth_handshakes == 2


def test_idle_close_before_invoke_is_resent_because_401_proves_it_was_not_run(http_server: FakeWinRMServer) -> None:
    with WsmanSession(http_server.url, options(scheme="http")) as session:
        assert isinstance(get(session), CimInstance)
        http_server.close_idle_connections()
        wait_until(lambda: http_server.open_connections == 0, "the server to close the connection")
        out = killjob(session, job_id(0x100))
        assert isinstance(out, MethodOutput) and out.return_value == 0
    assert http_server.stats.invokes == 1


def test_cookies_set_after_the_handshake_are_sent_back(http_server: FakeWinRMServer) -> None:
    # A load balancer in front of WinRM may pin a client to a node with a cookie.
    with WsmanSession(http_server.url, options(scheme="http")) as session:
        http_server.inject_next(headers=[("Set-Cookie", "affinity=node7; Path=/")])
        assert isinstance(get(session), CimInstance)
        assert isinstance(killjob(session, job_id(0x100)), MethodOutput)
    assert http_server.stats.cookies == ["affinity=node7"]


def test_a_redirect_is_not_followed_with_a_sealed_body(users_file: Path) -> None:
    with (
        FakeWinRMServer(SCENARIOS, users_file=users_file) as first,
        FakeWinRMServer(SCENARIOS, users_file=users_file) as elsewhere,
    ):
        with WsmanSession(first.url, options(scheme="http")) as session:
            first.inject_next(status=307, headers=[("Location", elsewhere.url)])
            with pytest.raises(errors.ProtocolError, match="unexpected HTTP 307"):
                killjob(session, job_id(0x100))
        assert elsewhere.stats.requests == 0


def test_idle_timeout_on_server_side(users_file: Path) -> None:
    with FakeWinRMServer(SCENARIOS, users_file=users_file, idle_timeout=0.2) as server:
        with WsmanSession(server.url, options(scheme="http")) as session:
            assert isinstance(get(session), CimInstance)
            assert server.open_connections == 1
            wait_until(lambda: server.open_connections == 0, "the server's idle timeout to close the connection")
            assert isinstance(get(session), CimInstance)
            assert session.reconnects == 1
        assert server.stats.connections == 2 and server.stats.auth_handshakes == 2


def test_connection_refused() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with WsmanSession(f"127.0.0.1:{port}", options(scheme="http")) as session:
        with pytest.raises(errors.ConnectionFailed) as info:
            get(session)
    assert info.value.type == "connection" and info.value.unreachable


def test_unresolvable_name() -> None:
    with WsmanSession("no-such-host.invalid", options(scheme="http")) as session:
        with pytest.raises(errors.NameResolutionFailed):
            get(session)


def test_read_timeout_on_get_and_outcome_unknown_on_invoke(http_server: FakeWinRMServer) -> None:
    opts = options(scheme="http", operation_timeout=0.3, read_timeout_margin=0.2)
    with WsmanSession(http_server.url, opts) as session:
        assert isinstance(get(session), CimInstance)  # authenticated first
        http_server.inject_next(latency_ms=1500)
        with pytest.raises(errors.RequestTimedOut) as info:
            get(session)
        assert info.value.type == "timeout"
    with WsmanSession(http_server.url, opts) as session:
        assert isinstance(get(session), CimInstance)
        http_server.inject_next(latency_ms=1500)
        with pytest.raises(errors.OutcomeUnknown):
            killjob(session, job_id(0x100))


@pytest.mark.parametrize(
    ("injection", "error", "message"),
    [
        ({"close": "mid_response"}, errors.OutcomeUnknown, "may have run"),
        ({"close": "before_response"}, errors.OutcomeUnknown, "may have run"),
        ({"body": "malformed"}, errors.ProtocolError, ""),
        ({"body": "truncated"}, errors.ProtocolError, ""),
        ({"relates_to": "uuid:SOMEONE-ELSE"}, errors.RelatesToMismatch, "RelatesTo"),
        ({"action": "urn:wrong"}, errors.UnexpectedAction, "urn:wrong"),
        ({"corrupt": "signature"}, errors.ProtocolError, "cannot decrypt"),
        ({"corrupt": "payload"}, errors.ProtocolError, "cannot decrypt"),
        ({"status": 503}, errors.ProtocolError, "HTTP 503"),
    ],
)
def test_injected_faults_on_an_invoke(
    http_server: FakeWinRMServer, injection: dict[str, Any], error: type, message: str
) -> None:
    with WsmanSession(http_server.url, options(scheme="http")) as session:
        assert isinstance(get(session), CimInstance)
        http_server.inject_next(**injection)
        with pytest.raises(errors.HvjobError) as info:
            killjob(session, job_id(0x100))
        # Exactly this class (not a broader one), naming the host, and the KillJob reached the server
        # (each of these faults comes after the server ran it): no resend was attempted.
        assert type(info.value) is error, info.value
        assert message in info.value.message and info.value.host == http_server.url
        assert http_server.stats.invokes == 1 and session.reconnects == 0
        # The session is still usable afterwards (reconnecting if the fault cost the connection).
        assert isinstance(get(session), CimInstance)


def test_oversized_body_is_refused(http_server: FakeWinRMServer) -> None:
    with WsmanSession(http_server.url, options(scheme="http", max_response_bytes=64 * 1024)) as session:
        assert isinstance(get(session), CimInstance)
        http_server.inject_next(body="oversized", size=200 * 1024)
        with pytest.raises(errors.ResponseTooLarge):
            get(session)


def test_reset_during_safe_request_is_retried_once(http_server: FakeWinRMServer) -> None:
    with WsmanSession(http_server.url, options(scheme="http")) as session:
        assert isinstance(get(session), CimInstance)
        http_server.inject_next(close="before_response")
        assert isinstance(get(session), CimInstance)
        assert session.reconnects == 1


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"scheme": "http", "transport": "basic"}, "Basic password in clear"),
        ({"scheme": "http", "message_encryption": "never"}, "unencrypted"),
        ({"transport": "certificate"}, "cert_pem"),
    ],
)
def test_weak_settings_must_be_asked_for(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(errors.UsageError, match=match):
        WsmanSession("node1", options(**kw))


def test_unencrypted_http_when_asked_warns(caplog: pytest.LogCaptureFixture) -> None:
    WsmanSession("node1", options(scheme="http", transport="basic", allow_unencrypted=True))
    assert any("unencrypted" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("node1", "https://node1:5986/wsman"),
        ("node1:1234", "https://node1:1234/wsman"),
        ("http://n:80/wsman", "http://n:80/wsman"),
        ("::1", "https://[::1]:5986/wsman"),
        ("[::1]:99", "https://[::1]:99/wsman"),
    ],
)
def test_endpoint_url(host: str, url: str) -> None:
    assert endpoint_url(host, options()) == url


@pytest.mark.parametrize(
    "host",
    [
        "http://alice:Leaky-Secret-99@node1:5985/wsman",
        "https://alice:Leaky-Secret-99@node1/wsman",
        "http://Leaky-Secret-99@node1/wsman",
        "alice:Leaky-Secret-99@node1:5985",
        "alice:Leaky-Secret-99@node1",
        "Leaky-Secret-99@[::1]:5985",
        "http://alice:Leaky/Secret-99@node1/wsman",  # a '/' in the password: not a path
    ],
)
def test_a_host_with_user_information_is_refused_without_repeating_it(host: str) -> None:
    for check in (lambda: endpoint_url(host, options()), lambda: WsmanSession(host, options(scheme="http"))):
        with pytest.raises(errors.UsageError) as info:
            check()
        shown = str(info.value) + repr(info.value) + str(info.value.to_dict())
        assert "Leaky-Secret-99" not in shown and "alice" not in shown
        assert "user information" in info.value.message


def test_any_at_sign_is_refused_and_messages_show_the_host_without_what_precedes_it() -> None:
    with pytest.raises(errors.UsageError):  # no WinRM path has one; a password may hold a '/'
        endpoint_url("http://node1:5985/wsman@x", options())
    assert without_userinfo("http://alice:p://w/d@node1:5985/wsman") == "http://***@node1:5985/wsman"
    assert without_userinfo("alice:pw@node1") == "***@node1" and without_userinfo("node1:5985") == "node1:5985"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"ca_trust_path": "/no/such/ca.pem"}, "ca_trust_path: cannot read"),
        ({"transport": "certificate", "cert_pem": "/no/cert.pem", "cert_key_pem": "/no/key.pem"}, "cannot read"),
        ({"transport": "basic", "message_encryption": "always"}, "cannot encrypt messages"),
        ({"proxy": "socks5://proxy:1080"}, "proxy must be an http"),
        pytest.param(
            {"transport": "kerberos", "password": "x", "username": None},
            "principal",
            marks=pytest.mark.skipif(not kerberos_available(), reason="GSSAPI not installed (the kerberos extra)"),
        ),
        pytest.param(
            {"transport": "kerberos"},
            "Kerberos needs GSSAPI",
            marks=pytest.mark.skipif(kerberos_available(), reason="GSSAPI is installed"),
        ),
        ({"connect_timeout": 0}, "connect_timeout must be positive"),
    ],
)
def test_configuration_mistakes_are_usage_errors_before_any_connection(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(errors.UsageError, match=match):
        WsmanSession("127.0.0.1:1", options(**kw))


def test_a_ca_file_that_is_not_pem_is_a_usage_error(https_server: FakeWinRMServer, tmp_path: Path) -> None:
    garbage = tmp_path / "not-a-ca.pem"
    garbage.write_text("this is not a certificate\n")
    with WsmanSession(https_server.url, options(ca_trust_path=str(garbage))) as session:
        with pytest.raises(errors.UsageError, match="invalid TLS configuration"):
            get(session)
    assert https_server.stats.requests == 0


@pytest.mark.parametrize(
    ("transport", "match"),
    [("ntlm", "NTLM needs a username and a password"), ("credssp", "CredSSP needs"), ("basic", "Basic")],
)
def test_missing_credentials_are_usage_errors_and_nothing_is_sent(
    http_server: FakeWinRMServer, transport: str, match: str
) -> None:
    opts = ConnectionOptions(transport=transport, username="alice", scheme="http", allow_unencrypted=True)  # type: ignore[arg-type]
    with WsmanSession(http_server.url, opts) as session, pytest.raises(errors.UsageError, match=match):
        get(session)
    assert http_server.stats.requests == 0


def test_repr_never_shows_the_password() -> None:
    opts = options()
    session = WsmanSession("node1", opts)
    assert CANARY_PASSWORD not in repr(opts) and CANARY_PASSWORD not in repr(session)


def test_pywinrm_and_pypsrp_clients_get_the_fixture_answer(http_server: FakeWinRMServer, https_server, pki) -> None:  # type: ignore[no-untyped-def]
    import xml.etree.ElementTree as ET

    import winrm.transport
    from pypsrp.wsman import SelectorSet, WSMan

    jid = job_id(0x100)
    request = build.build_invoke(
        build.HeaderOptions(to=http_server.url), JOB_URI, "KillJob", {"DeleteOnKill": False}, {"InstanceID": jid}
    )
    transport = winrm.transport.Transport(
        endpoint=http_server.url,
        username="alice",
        password=CANARY_PASSWORD,
        auth_method="ntlm",
        message_encryption="always",
    )
    assert b"<p:ReturnValue>0</p:ReturnValue>" in transport.send_message(request.payload)

    body = ET.Element(f"{{{JOB_URI}}}KillJob_INPUT")
    ET.SubElement(body, f"{{{JOB_URI}}}DeleteOnKill").text = "false"
    selectors = SelectorSet()
    selectors.add_option("InstanceID", jid)
    cases = [(http_server, False, "ntlm"), (https_server, True, "ntlm"), (https_server, True, "basic")]
    for server, use_ssl, auth in cases:
        extra: dict[str, Any] = {"cert_validation": str(pki.ca_cert)} if use_ssl else {"encryption": "always"}
        wsman = WSMan(
            "127.0.0.1", port=server.port, ssl=use_ssl, auth=auth, username="alice", password=CANARY_PASSWORD, **extra
        )
        out = wsman.invoke(JOB_URI + "/KillJob", JOB_URI, body, selector_set=selectors)
        returned = out.find(f".//{{{JOB_URI}}}ReturnValue")
        assert returned is not None and returned.text == "0"


def test_unmatched_request_gets_a_fault_and_is_reported(http_server: FakeWinRMServer) -> None:
    with WsmanSession(http_server.url, options(scheme="http")) as session, pytest.raises(errors.ResourceNotFound):
        get(session, "NO-SUCH-JOB")
    assert [p.selectors for p in http_server.stats.unmatched] == [{"InstanceID": "NO-SUCH-JOB"}]


def test_sequences_step_and_the_last_repeats(http_server: FakeWinRMServer) -> None:
    with WsmanSession(http_server.url, options(scheme="http")) as session:
        states = [get(session)["JobState"] for _ in range(3)]  # type: ignore[index]
    assert states == ["4", "9", "9"]


def test_recorder_writes_a_replayable_scrubbed_fixture(
    http_server: FakeWinRMServer, tmp_path: Path, users_file: Path
) -> None:
    from hvjob.recorder import FixtureRecorder

    recorder = FixtureRecorder(tmp_path, "recorded", endpoint=http_server.url, username="alice")
    with WsmanSession(http_server.url, options(scheme="http"), recorder=recorder) as session:
        get(session)
        killjob(session, job_id(0x100))
    path = recorder.save()
    text = path.read_text()
    assert "recorded by hvjob" in text and "target not identified" in text  # not "a real host": the fake server
    assert "HVNODE01" not in text and "contoso" not in text.lower() and "backup-svc" not in text
    assert CANARY_PASSWORD not in text
    # The recording replays: a new server answers the same requests from it.
    with FakeWinRMServer(tmp_path, users_file=users_file) as replay:
        with WsmanSession(replay.url, options(scheme="http")) as session:
            assert isinstance(get(session), CimInstance)
            out = killjob(session, job_id(0x100))
            assert isinstance(out, MethodOutput) and out.return_value == 0
        assert replay.stats.unmatched == []


@pytest.mark.parametrize(
    ("transport", "scheme"), [("ntlm", "http"), ("ntlm", "https"), ("basic", "https"), ("credssp", "http")]
)
def test_hvjob_loggers_at_debug_show_soap_and_nothing_of_authentication(
    users_file: Path, pki: Any, caplog: pytest.LogCaptureFixture, transport: str, scheme: str
) -> None:
    tls = pki.server_context() if scheme == "https" else None
    auth = ("credssp",) if transport == "credssp" else ("negotiate", "basic")
    with FakeWinRMServer(SCENARIOS, users_file=users_file, tls=tls, auth=auth) as server:
        caplog.set_level(logging.DEBUG, logger="hvjob")
        opts = options(transport=transport, scheme=scheme, ca_trust_path=str(pki.ca_cert))
        with WsmanSession(server.url, opts) as session:
            get(session)
            killjob(session, job_id(0x100))
    own = [r for r in caplog.records if r.name.startswith("hvjob.") and not r.name.startswith("hvjob.testing")]
    text = "\n".join(r.getMessage() for r in own)
    assert "GetResponse" in text and "KillJob_OUTPUT" in text  # the SOAP, after decryption
    assert leaks(text) == [] and CANARY_NT_HASH.upper() not in text
    assert "Authorization" not in text and "WWW-Authenticate" not in text
