"""The shared HTTP/authentication front: what real clients notice (issue 13), over raw HTTP.

Each test here failed against the front before its fix: RelatesTo with an attributed MessageID,
a fresh MessageID per reply, go-ntlmssp's NTLM domain, the authenticated Identify version,
case-insensitive WMI paths, Windows' status for unencrypted traffic, non-POST requests and a
wrong Content-Type.
"""

from __future__ import annotations

import base64
import http.client
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import spnego

from conftest import CANARY_PASSWORD, JOB_URI, SCENARIOS, job_id
from hvjob.jobs import JobClient
from hvjob.testing import FakeWinRMServer
from hvjob.testing.front import challenge_target_name
from hvjob.transport import WsmanSession
from sim_helpers import connection_options

RUNNING = job_id(0x300)

GET_WITH_ATTRIBUTED_ID = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header>'
    '<a:To>http://127.0.0.1/wsman</a:To><a:Action s:mustUnderstand="true">'
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</a:Action>"
    '<a:MessageID s:mustUnderstand="true">\n  {mid}\n</a:MessageID>'
    f'<w:ResourceURI s:mustUnderstand="true">{{uri}}</w:ResourceURI>'
    f'<w:SelectorSet><w:Selector Name="InstanceID">{RUNNING}</w:Selector></w:SelectorSet>'
    "</s:Header><s:Body/></s:Envelope>"
)


def _basic(user: str = "alice", password: str = CANARY_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def plain_server(users_file: Path) -> Iterator[FakeWinRMServer]:
    """Basic and NTLM over plain HTTP with AllowUnencrypted on (what Go and curl clients need)."""
    with FakeWinRMServer(
        SCENARIOS, users_file=users_file, auth=("negotiate", "basic"), allow_unencrypted=True
    ) as server:
        yield server


def _post(
    server: FakeWinRMServer, body: bytes, headers: dict[str, str], connection: http.client.HTTPConnection | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = connection or http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/wsman", body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    result = response.status, {k.lower(): v for k, v in response.getheaders()}, data
    if connection is None:
        conn.close()
    return result


def _relates_to(reply: bytes) -> str:
    match = re.search(rb"<a:RelatesTo>([^<]*)</a:RelatesTo>", reply)
    assert match is not None, reply[:300]
    return match.group(1).decode()


def _message_id(reply: bytes) -> str:
    match = re.search(rb"<a:MessageID>([^<]*)</a:MessageID>", reply)
    assert match is not None, reply[:300]
    return match.group(1).decode()


def test_relates_to_echoes_a_message_id_with_attributes_and_whitespace(plain_server: FakeWinRMServer) -> None:
    mid = "uuid:6E0B0C8A-1111-4222-8333-944455556666"
    body = GET_WITH_ATTRIBUTED_ID.format(mid=mid, uri=JOB_URI).encode()
    status, _, reply = _post(
        plain_server, body, {"Authorization": _basic(), "Content-Type": "application/soap+xml;charset=UTF-8"}
    )
    assert status == 200
    assert _relates_to(reply) == mid


def test_every_reply_has_a_fresh_message_id(plain_server: FakeWinRMServer) -> None:
    seen = set()
    for n in range(3):
        body = GET_WITH_ATTRIBUTED_ID.format(mid=f"uuid:6E0B0C8A-1111-4222-8333-94445555000{n}", uri=JOB_URI).encode()
        _, _, reply = _post(
            plain_server, body, {"Authorization": _basic(), "Content-Type": "application/soap+xml;charset=UTF-8"}
        )
        seen.add(_message_id(reply))
    assert len(seen) == 3
    assert not any(mid.startswith("uuid:00000000") for mid in seen)


def test_wmi_namespace_and_class_names_are_case_insensitive(http_server: FakeWinRMServer) -> None:
    with WsmanSession(http_server.url, connection_options(scheme="http")) as session:
        client = JobClient(
            session, namespace="ROOT/hypervCLUSTER/V2", class_name="msvm_collectionreferencepointexportjob"
        )
        result = client.show(RUNNING)
    assert result.ok, result.error
    assert result.properties is not None and result.properties["InstanceID"] == RUNNING


def test_identify_reports_the_os_version_only_when_authenticated(http_server: FakeWinRMServer) -> None:
    with WsmanSession(http_server.url, connection_options(scheme="http")) as session:
        client = JobClient(session)
        authenticated = client.identify()
        anonymous = client.identify(anonymous=True)
    assert authenticated.identity is not None and anonymous.identity is not None
    assert authenticated.identity["product_version"] == "OS: 10.0.20348 SP: 0.0 Stack: 3.0"
    assert anonymous.identity["product_version"] == "OS: 0.0.0 SP: 0.0 Stack: 3.0"


# --- go-ntlmssp: the challenge's TargetName as the domain ------------------------------------------


def _target_name_of(challenge: bytes) -> str:
    """An independent reading of [MS-NLMP] 2.2.1.2 (CHALLENGE_MESSAGE: TargetNameFields at 12)."""
    assert challenge[:12] == b"NTLMSSP\x00\x02\x00\x00\x00"
    length, _, offset = struct.unpack_from("<HHI", challenge, 12)
    return challenge[offset : offset + length].decode("utf-16-le")


def _ntlm_as_go_does(server: FakeWinRMServer, body: bytes) -> tuple[int, bytes]:
    """NTLM the way go-ntlmssp does it: the user without a domain in the configuration, and the
    challenge's TargetName sent as the AUTHENTICATE's domain; the SOAP body rides, unencrypted, on
    the AUTHENTICATE leg. Built with pyspnego's public client API: a first context only makes the
    NEGOTIATE, a second one, created once the TargetName is known, answers the CHALLENGE."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    probe = spnego.client("placeholder", "placeholder", protocol="ntlm")
    negotiate = probe.step()
    assert negotiate is not None
    status, headers, _ = _post(
        server, b"", {"Authorization": "Negotiate " + base64.b64encode(negotiate).decode()}, conn
    )
    assert status == 401
    challenge = base64.b64decode(headers["www-authenticate"].split()[1])
    target = _target_name_of(challenge)
    assert target and challenge_target_name(challenge) == target
    initiator = spnego.client(f"{target}\\alice", CANARY_PASSWORD, protocol="ntlm")
    initiator.step()  # its own NEGOTIATE, identical to the probe's
    authenticate = initiator.step(challenge)
    assert authenticate is not None
    status, _, reply = _post(
        server,
        body,
        {
            "Authorization": "Negotiate " + base64.b64encode(authenticate).decode(),
            "Content-Type": "application/soap+xml;charset=UTF-8",
        },
        conn,
    )
    conn.close()
    return status, reply


def test_go_ntlmssp_style_domain_logs_on_to_the_local_account(plain_server: FakeWinRMServer) -> None:
    mid = "uuid:6E0B0C8A-1111-4222-8333-9444555500AA"
    status, reply = _ntlm_as_go_does(plain_server, GET_WITH_ATTRIBUTED_ID.format(mid=mid, uri=JOB_URI).encode())
    assert status == 200, reply[:200]
    assert _relates_to(reply) == mid


def test_a_domain_user_is_not_reachable_under_the_target_name(users_file: Path) -> None:
    """bob is listed as CONTOSO\\bob: a domain account, not a local one; TARGET\\bob is refused."""
    with FakeWinRMServer(SCENARIOS, users_file=users_file, allow_unencrypted=True) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        probe = spnego.client("placeholder", "placeholder", protocol="ntlm")
        negotiate = probe.step()
        assert negotiate is not None
        _, headers, _ = _post(server, b"", {"Authorization": "Negotiate " + base64.b64encode(negotiate).decode()}, conn)
        challenge = base64.b64decode(headers["www-authenticate"].split()[1])
        initiator = spnego.client(f"{_target_name_of(challenge)}\\bob", CANARY_PASSWORD + "x", protocol="ntlm")
        initiator.step()
        authenticate = initiator.step(challenge)
        assert authenticate is not None
        status, _, _ = _post(
            server, b"", {"Authorization": "Negotiate " + base64.b64encode(authenticate).decode()}, conn
        )
        conn.close()
    assert status == 401


# --- unencrypted traffic, methods, content types ----------------------------------------------------


def test_unencrypted_traffic_gets_windows_statuses_unless_allowed(users_file: Path) -> None:
    body = GET_WITH_ATTRIBUTED_ID.format(mid="uuid:6E0B0C8A-1111-4222-8333-9444555500BB", uri=JOB_URI).encode()
    with FakeWinRMServer(SCENARIOS, users_file=users_file) as server:  # AllowUnencrypted false (the default)
        status, _, reply = _post(server, body, {"Authorization": _basic(), "Content-Type": "application/soap+xml"})
        assert status == 401 and reply == b""  # Basic is refused over plain HTTP
        status, reply = _ntlm_as_go_does(server, body)
        assert (status, reply) == (500, b"")  # authenticated, but the body is not sealed
    with FakeWinRMServer(SCENARIOS, users_file=users_file, allow_unencrypted=True) as server:
        status, _, reply = _post(server, body, {"Authorization": _basic(), "Content-Type": "application/soap+xml"})
        assert status == 200 and RUNNING.encode() in reply


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "OPTIONS"])
def test_non_post_requests_get_405_not_an_html_page(plain_server: FakeWinRMServer, method: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", plain_server.port, timeout=10)
    conn.request(method, "/wsman")
    response = conn.getresponse()
    data = response.read()
    conn.close()
    assert (response.status, response.getheader("Allow"), data) == (405, "POST", b"")
    assert response.getheader("Server") == "Microsoft-HTTPAPI/2.0"


def test_other_paths_get_http_sys_not_found_page(plain_server: FakeWinRMServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", plain_server.port, timeout=10)
    conn.request("GET", "/")
    response = conn.getresponse()
    data = response.read()
    conn.close()
    assert response.status == 404
    assert response.getheader("Content-Type") == "text/html; charset=us-ascii"
    assert b"HTTP Error 404. The requested resource is not found." in data
    assert b"Python" not in data and b"Error response" not in data


def test_a_wrong_content_type_gets_415(plain_server: FakeWinRMServer) -> None:
    body = GET_WITH_ATTRIBUTED_ID.format(mid="uuid:6E0B0C8A-1111-4222-8333-9444555500CC", uri=JOB_URI).encode()
    status, _, reply = _post(plain_server, body, {"Authorization": _basic(), "Content-Type": "text/plain"})
    assert (status, reply) == (415, b"")


def test_a_malformed_request_line_gets_http_sys_400(plain_server: FakeWinRMServer) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", plain_server.port), timeout=10) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"text/html; charset=us-ascii" in reply and b"Python" not in reply
    assert plain_server.stats.handler_errors == 0
