"""The client transport against the fake server over real HTTP(S) with real authentication."""

from __future__ import annotations

import importlib
import inspect
import socket
import ssl
import time
from pathlib import Path

import pytest
import requests.exceptions
import spnego.exceptions
import urllib3.exceptions
import winrm.exceptions

from conftest import CANARY_PASSWORD, JOB_URI, SCENARIOS, job_id, options
from hvjob import errors
from hvjob.testing import FakeWinRMServer, make_pki
from hvjob.transport import WsmanSession, endpoint_url, translate
from hvjob.wire import build
from hvjob.wire.parse import CimInstance, MethodOutput

RUNNING = job_id(0x300)  # stop_rsc_completed: Running, then Killed


def get(session: WsmanSession, jid: str = RUNNING) -> object:
    return session.send(build.build_get(session.header_options, JOB_URI, {"InstanceID": jid}))


def killjob(session: WsmanSession, jid: str) -> object:
    return session.send(
        build.build_invoke(session.header_options, JOB_URI, "KillJob", {"DeleteOnKill": False}, {"InstanceID": jid})
    )


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
        time.sleep(0.05)
        again = get(session)
        assert isinstance(again, CimInstance)
        assert session.reconnects == 1
    assert http_server.stats.auth_handshakes == 2


def test_idle_close_before_invoke_is_resent_because_401_proves_it_was_not_run(http_server: FakeWinRMServer) -> None:
    with WsmanSession(http_server.url, options(scheme="http")) as session:
        assert isinstance(get(session), CimInstance)
        http_server.close_idle_connections()
        time.sleep(0.05)
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
            time.sleep(0.6)
            assert isinstance(get(session), CimInstance)
            assert session.reconnects == 1


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
    ("injection", "error"),
    [
        ({"close": "mid_response"}, errors.OutcomeUnknown),
        ({"close": "before_response"}, errors.OutcomeUnknown),
        ({"body": "malformed"}, errors.ProtocolError),
        ({"body": "truncated"}, errors.ProtocolError),
        ({"relates_to": "uuid:SOMEONE-ELSE"}, errors.RelatesToMismatch),
        ({"action": "urn:wrong"}, errors.UnexpectedAction),
        ({"corrupt": "signature"}, errors.ProtocolError),
        ({"corrupt": "payload"}, errors.ProtocolError),
        ({"status": 503}, errors.ProtocolError),
    ],
)
def test_injected_faults_on_an_invoke(http_server: FakeWinRMServer, injection: dict, error: type) -> None:
    with WsmanSession(http_server.url, options(scheme="http")) as session:
        assert isinstance(get(session), CimInstance)
        http_server.inject_next(**injection)
        with pytest.raises(error) as info:
            killjob(session, job_id(0x100))
    assert type(info.value) is error or issubclass(type(info.value), error)


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
def test_weak_settings_must_be_asked_for(kw: dict, match: str) -> None:
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


def test_repr_never_shows_the_password() -> None:
    opts = options()
    session = WsmanSession("node1", opts)
    assert CANARY_PASSWORD not in repr(opts) and CANARY_PASSWORD not in repr(session)


def _foreign_exceptions() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for module in (requests.exceptions, urllib3.exceptions, winrm.exceptions, spnego.exceptions, ssl):
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and not issubclass(obj, Warning):
                found.append(obj)
    return found + [ConnectionResetError, ConnectionRefusedError, socket.timeout, OSError, PermissionError]


def _optional_auth_modules() -> list[object]:
    modules: list[object] = []
    for name in (
        "kerberos",
        "gssapi.exceptions",
        "winrm.vendor.requests_kerberos.exceptions",
        "requests_credssp.exceptions",
    ):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    return modules


def test_kerberos_and_credssp_library_errors_are_authentication_errors() -> None:
    classes = [
        obj
        for module in _optional_auth_modules()
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, BaseException)
        and not issubclass(obj, Warning)
        and obj.__module__.startswith(("kerberos", "gssapi", "winrm.vendor", "requests_credssp"))
        # gssapi's GeneralError family (EncryptionNotUsed...) comes from unwrapping a reply: protocol
        and not obj.__name__.endswith(("GeneralError", "EncryptionNotUsed", "UnknownUsageError"))
    ]
    if not classes:
        pytest.skip("no optional Kerberos or CredSSP library installed")
    for cls in classes:
        error = translate(_instance(cls), host="h", request=None, sent=False)
        assert error.type == "authentication", cls


def _instance(cls: type[BaseException]) -> BaseException:
    for args in ((), ("boom",), (None, "boom"), ("boom", "boom"), (1, "boom"), ("http", 500, "boom")):
        try:
            return cls(*args)
        except Exception:
            continue
    return cls.__new__(cls)


def test_every_foreign_exception_is_translated() -> None:
    """Fails when a library adds an exception that translate() turns into something undocumented."""
    request = build.build_invoke(
        build.HeaderOptions(), JOB_URI, "KillJob", {"DeleteOnKill": False}, {"InstanceID": "J"}
    )
    documented = {"connection", "tls", "authentication", "timeout", "protocol", "outcome_unknown"}
    classes = _foreign_exceptions() + [
        obj
        for module in _optional_auth_modules()
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, BaseException) and not issubclass(obj, Warning)
    ]
    assert len(classes) > 60
    for cls in classes:
        for sent in (False, True):
            error = translate(_instance(cls), host="h", request=request, sent=sent)
            assert isinstance(error, errors.HvjobError), cls
            assert error.type in documented, (cls, error.type)
            assert error.host == "h"


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
        extra = {"cert_validation": str(pki.ca_cert)} if use_ssl else {"encryption": "always"}
        wsman = WSMan(
            "127.0.0.1", port=server.port, ssl=use_ssl, auth=auth, username="alice", password=CANARY_PASSWORD, **extra
        )
        out = wsman.invoke(JOB_URI + "/KillJob", JOB_URI, body, selector_set=selectors)
        assert out.find(f".//{{{JOB_URI}}}ReturnValue").text == "0"


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


def test_debug_traffic_log_has_soap_but_no_secret(
    http_server: FakeWinRMServer, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    with WsmanSession(http_server.url, options(scheme="http")) as session:
        get(session)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "GetResponse" in text and "<s:Envelope" in text
    assert CANARY_PASSWORD not in text


def test_ntlm_secret_is_the_nt_hash_pyspnego_accepts_without_the_lm_hash() -> None:
    from spnego._credential import NTLMHash, unify_credentials

    from hvjob.transport import _ntlm_secret

    secret = _ntlm_secret("Password")
    assert secret == "0" * 32 + ":a4f49c406510bdcab6824ee7c30fd852"  # MS-NLMP 4.2.2.1.2 test vector
    (credential,) = unify_credentials("alice", secret)
    assert isinstance(credential, NTLMHash) and credential.nt_hash == "a4f49c406510bdcab6824ee7c30fd852"
    assert _ntlm_secret(None) is None
