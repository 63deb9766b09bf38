"""CredSSP (pyspnego's acceptor) and client-certificate authentication against the fake server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import JOB_URI, SCENARIOS, job_id, options
from hvjob import errors
from hvjob.testing import FakeWinRMServer
from hvjob.transport import WsmanSession
from hvjob.wire import build, framing
from hvjob.wire.parse import CimInstance, MethodOutput


def get(session: WsmanSession) -> object:
    return session.send(build.build_get(session.header_options, JOB_URI, {"InstanceID": job_id(0x300)}))


def killjob(session: WsmanSession) -> object:
    return session.send(
        build.build_invoke(
            session.header_options, JOB_URI, "KillJob", {"DeleteOnKill": False}, {"InstanceID": job_id(0x100)}
        )
    )


@pytest.fixture
def credssp_http(users_file: Path) -> Iterator[FakeWinRMServer]:
    with FakeWinRMServer(SCENARIOS, users_file=users_file, auth=("credssp",)) as server:
        yield server


def test_credssp_over_http_with_message_encryption(credssp_http: FakeWinRMServer) -> None:
    with WsmanSession(f"127.0.0.1:{credssp_http.port}", options(transport="credssp", scheme="http")) as session:
        assert isinstance(get(session), CimInstance)
        out = killjob(session)
        assert isinstance(out, MethodOutput) and out.return_value == 0
    assert credssp_http.stats.auth_handshakes == 1


def test_credssp_over_https(users_file: Path, pki) -> None:  # type: ignore[no-untyped-def]
    with FakeWinRMServer(SCENARIOS, users_file=users_file, auth=("credssp",), tls=pki.server_context()) as server:
        with WsmanSession(server.url, options(transport="credssp", ca_trust_path=str(pki.ca_cert))) as session:
            assert isinstance(get(session), CimInstance)


def test_credssp_wrong_password(credssp_http: FakeWinRMServer) -> None:
    opts = options(transport="credssp", scheme="http", password="Wrong-Secret-4711")
    with WsmanSession(f"127.0.0.1:{credssp_http.port}", opts) as session:
        with pytest.raises(errors.AuthenticationFailed) as info:
            get(session)
    assert "Wrong-Secret-4711" not in str(info.value) + repr(info.value) + str(info.value.to_dict())


@pytest.fixture
def cert_server(users_file: Path, pki) -> Iterator[FakeWinRMServer]:  # type: ignore[no-untyped-def]
    tls = pki.server_context(client_ca=pki.ca_cert)
    with FakeWinRMServer(SCENARIOS, users_file=users_file, auth=("certificate",), tls=tls) as server:
        yield server


def cert_options(pki, cert: Path, key: Path, **kw: object):  # type: ignore[no-untyped-def]
    return options(
        transport="certificate",
        username=None,
        password=None,
        ca_trust_path=str(pki.ca_cert),
        cert_pem=str(cert),
        cert_key_pem=str(key),
        **kw,
    )


def test_client_certificate_mapped_by_upn(cert_server: FakeWinRMServer, pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = pki.issue_client_cert("alice@hvjob.test", tmp_path)
    with WsmanSession(cert_server.url, cert_options(pki, cert, key)) as session:
        assert isinstance(get(session), CimInstance)
        assert isinstance(killjob(session), MethodOutput)


def test_client_certificate_of_unknown_user_is_rejected(cert_server: FakeWinRMServer, pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = pki.issue_client_cert("mallory@hvjob.test", tmp_path)
    with WsmanSession(cert_server.url, cert_options(pki, cert, key)) as session:
        with pytest.raises(errors.AuthenticationFailed):
            get(session)


def test_client_certificate_from_another_ca_is_rejected(cert_server: FakeWinRMServer, pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from hvjob.testing import make_pki

    rogue = make_pki(tmp_path / "rogue")
    cert, key = rogue.issue_client_cert("alice@hvjob.test", tmp_path)
    with WsmanSession(cert_server.url, cert_options(pki, cert, key)) as session:
        with pytest.raises((errors.AuthenticationFailed, errors.TLSFailed)):
            get(session)


def test_certificate_auth_needs_https_and_both_files(pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = pki.issue_client_cert("alice@hvjob.test", tmp_path)
    with pytest.raises(errors.UsageError, match="HTTPS"):
        WsmanSession("127.0.0.1:1", cert_options(pki, cert, key, scheme="http"))
    with pytest.raises(errors.UsageError, match="cert_pem and cert_key_pem"):
        WsmanSession("127.0.0.1:1", options(transport="certificate", cert_pem=str(cert)))


@pytest.fixture
def part_counts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many parts each encrypted body had, client's and fake server's alike (one process)."""
    counts: list[int] = []
    real = framing.unframe_parts

    def counting(body: bytes) -> list[framing.EncryptedPart]:
        parts = real(body)
        counts.append(len(parts))
        return parts

    monkeypatch.setattr(framing, "unframe_parts", counting)
    return counts


def test_credssp_replies_over_16_kib_come_in_several_parts_and_are_all_unsealed(
    credssp_http: FakeWinRMServer, part_counts: list[int]
) -> None:
    replies: list[bytes] = []
    with WsmanSession(f"127.0.0.1:{credssp_http.port}", options(transport="credssp", scheme="http")) as session:
        session.recorder = lambda request, status, body: replies.append(body)
        assert isinstance(get(session), CimInstance)
        description = "Exporting a collection reference point"
        assert f"<p:Description>{description}</p:Description>".encode() in replies[0]
        long_text = "".join(f"{n:06d} " for n in range(6000))  # 42,000 characters: three 16 KiB parts
        big = replies[0].decode().replace(description, long_text)
        credssp_http.inject_next(reply=big, status=200)
        instance = get(session)
        assert isinstance(instance, CimInstance) and instance["Description"] == long_text
        assert isinstance(killjob(session), MethodOutput)  # the context is still in step
    assert max(part_counts) == 3  # the big reply: unframed in three parts
    assert part_counts.count(3) == 1


def test_credssp_requests_over_16_kib_are_sent_in_parts_the_server_reads(
    credssp_http: FakeWinRMServer, part_counts: list[int]
) -> None:
    wql = "SELECT * FROM Msvm_CollectionReferencePointExportJob WHERE " + " OR ".join(
        f"InstanceID = 'J{n:05d}'" for n in range(1500)
    )
    with WsmanSession(f"127.0.0.1:{credssp_http.port}", options(transport="credssp", scheme="http")) as session:
        request = build.build_enumerate(session.header_options, JOB_URI.rpartition("/")[0] + "/*", wql=wql)
        assert len(request.payload) > 2 * 16384
        # The server decrypted and read the query (no fixture answers it: a WS-Man fault, not an HTTP 400).
        with pytest.raises(errors.WSManFault):
            session.send(request)
    assert 3 in part_counts
