"""Property-based fuzzing of both ends: the fake server's request handling, and the client's
handling of whatever a server sends back. Only documented outcomes may come out."""

from __future__ import annotations

import base64
import contextlib
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import JOB_URI, SCENARIOS, job_id, options
from hvjob import errors
from hvjob.scenario import describe_request
from hvjob.testing import FakeWinRMServer
from hvjob.transport import WsmanSession
from hvjob.wire import build

DOCUMENTED = {"connection", "tls", "authentication", "timeout", "protocol", "wsman_fault", "outcome_unknown"}
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeWinRMServer]:
    from conftest import CANARY_PASSWORD

    users = tmp_path_factory.mktemp("fuzz-users") / "users.txt"
    users.write_text(f":alice:{CANARY_PASSWORD}\n")
    with FakeWinRMServer(SCENARIOS, users_file=users) as fake:
        yield fake


@given(st.binary(max_size=4096))
@FUZZ
def test_request_description_raises_only_hvjob_errors(data: bytes) -> None:
    with contextlib.suppress(errors.HvjobError):  # anything else escaping fails the test
        describe_request(data)


_TOKENS = st.one_of(
    st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()),
    st.binary(min_size=8, max_size=200).map(lambda b: base64.b64encode(b"NTLMSSP\x00" + b).decode()),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80),
)
_AUTH = st.one_of(
    st.none(),
    st.builds(lambda scheme, token: f"{scheme} {token}", st.sampled_from(["Negotiate", "NTLM", "Basic", "CredSSP", "Kerberos", "Bogus"]), _TOKENS),
)  # fmt: skip


@given(
    method=st.sampled_from(["POST", "GET", "PUT", "POST"]),
    path=st.sampled_from(["/wsman", "/wsman/", "/", "/WSMAN", "/other"]),
    authorization=_AUTH,
    content_type=st.sampled_from(["application/soap+xml;charset=UTF-8", 'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"', "text/plain", ""]),
    identify=st.booleans(),
    body=st.binary(max_size=2048),
)  # fmt: skip
@FUZZ
def test_server_answers_any_request_with_http_and_keeps_serving(
    server: FakeWinRMServer,
    method: str,
    path: str,
    authorization: str | None,
    content_type: str,
    identify: bool,
    body: bytes,
) -> None:
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", f"Content-Length: {len(body)}"]
    if authorization:
        head.append(f"Authorization: {authorization}")
    if content_type:
        head.append(f"Content-Type: {content_type}")
    if identify:
        head.append("WSMANIDENTIFY: unauthenticated")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 "), reply[:80]
    if reply:
        status = int(reply[9:12])
        assert status in (200, 400, 401, 404, 405, 413, 500, 501), status
    assert server.stats.handler_errors == 0


def _session(server: FakeWinRMServer) -> WsmanSession:
    return WsmanSession(f"127.0.0.1:{server.port}", options(scheme="http", operation_timeout=2, read_timeout_margin=1))


_NO_SURROGATES = st.characters(blacklist_categories=["Cs"])
_XMLISH = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=2000).map(lambda t: t.encode("utf-8")),
    st.builds(
        lambda inner: (
            '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header>'
            f"<a:Action>{inner}</a:Action></s:Header><s:Body>{inner}</s:Body></s:Envelope>"
        ).encode(),
        st.text(alphabet=_NO_SURROGATES, max_size=200),
    ),
)


@given(body=_XMLISH, status=st.sampled_from([200, 400, 401, 500, 502]))
@FUZZ
def test_client_turns_any_reply_into_a_result_or_a_documented_error(
    server: FakeWinRMServer, body: bytes, status: int
) -> None:
    with _session(server) as session:
        request = build.build_get(session.header_options, JOB_URI, {"InstanceID": job_id(0x300)})
        session.send(request)  # authenticate first, so the fuzzed reply answers a real request
        server.inject_next(raw_body=body, status=status)
        error_type: str | None = None
        try:
            session.send(request)
        except errors.HvjobError as exc:
            error_type = exc.type
        assert error_type is None or error_type in DOCUMENTED, error_type
    assert server.stats.handler_errors == 0
