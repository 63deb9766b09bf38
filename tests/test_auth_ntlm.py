"""NTLM on pyspnego's public API: the NT hash, the round trips of a fresh session, the schemes,
and how long the secrets live."""

from __future__ import annotations

import gc
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
import spnego

import hvjob.transport
from conftest import CANARY_PASSWORD, JOB_URI, SCENARIOS, job_id, options
from hvjob import errors
from hvjob.jobs import JobClient
from hvjob.testing import FakeWinRMServer
from hvjob.transport import WsmanSession, nt_hash
from hvjob.transport.nthash import md4
from hvjob.wire import build
from hvjob.wire.parse import CimInstance

KILLABLE, RUNNING = job_id(0x100), job_id(0x300)


@pytest.mark.parametrize(
    ("message", "digest"),
    [  # RFC 1320 A.5
        (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
        (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
        (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
        (b"message digest", "d9130a8164549fe818874806e1c7014b"),
        (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
        (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
    ],
)
def test_md4_matches_rfc_1320(message: bytes, digest: str) -> None:
    assert md4(message).hex() == digest


def test_nt_hash_matches_ms_nlmp() -> None:
    assert nt_hash("Password") == "a4f49c406510bdcab6824ee7c30fd852"  # [MS-NLMP] 4.2.2.1.2
    assert len(nt_hash("x" * 200)) == 32  # several MD4 blocks


def test_a_fresh_kill_is_three_exchanges_and_a_fresh_stop_four(http_server: FakeWinRMServer) -> None:
    # Negotiate token on the first request, the authenticate leg (empty body), then the sealed calls.
    with WsmanSession(http_server.url, options(scheme="http")) as session:
        assert JobClient(session).kill(KILLABLE).ok
    assert (http_server.stats.requests, http_server.stats.auth_handshakes) == (3, 1)
    http_server.reset()
    with WsmanSession(http_server.url, options(scheme="http")) as session:
        result = JobClient(session).stop(RUNNING)
        assert result.ok and result.changed, result.error
    assert http_server.stats.requests == 4
    assert [(action or "").rpartition("/")[2] for action, _ in http_server.stats.served] == [
        "Get",
        "RequestStateChange",
    ]


def test_the_fake_server_takes_a_token_on_the_first_request_and_after_a_challenge(
    http_server: FakeWinRMServer,
) -> None:
    import winrm.transport

    request = build.build_invoke(
        build.HeaderOptions(to=http_server.url), JOB_URI, "KillJob", {"DeleteOnKill": False}, {"InstanceID": KILLABLE}
    )
    # pywinrm asks anonymously first, earns the 401 challenge, then negotiates.
    pywinrm = winrm.transport.Transport(
        endpoint=http_server.url,
        username="alice",
        password=CANARY_PASSWORD,
        auth_method="ntlm",
        message_encryption="always",
    )
    assert b"<p:ReturnValue>0</p:ReturnValue>" in pywinrm.send_message(request.payload)
    pywinrm.close_session()
    assert http_server.stats.requests == 4  # anonymous, negotiate, authenticate, KillJob
    http_server.reset()
    with WsmanSession(http_server.url, options(scheme="http")) as session:
        assert JobClient(session).kill(KILLABLE).ok
    assert http_server.stats.requests == 3  # negotiate (no 401 first), authenticate, KillJob


def test_a_server_offering_only_ntlm_gets_that_scheme_on_the_next_leg(users_file: Path) -> None:
    with FakeWinRMServer(SCENARIOS, users_file=users_file, auth=("ntlm",)) as server:
        with WsmanSession(server.url, options(scheme="http")) as session:
            assert isinstance(
                session.send(build.build_get(session.header_options, JOB_URI, {"InstanceID": RUNNING})), CimInstance
            )
        assert server.stats.requests == 4  # Negotiate refused with "WWW-Authenticate: NTLM", then NTLM
        assert server.stats.auth_handshakes == 1


def test_a_server_offering_no_usable_scheme_is_an_authentication_error(users_file: Path) -> None:
    with FakeWinRMServer(SCENARIOS, users_file=users_file, auth=("basic",)) as server:
        with WsmanSession(server.url, options(scheme="http")) as session:
            with pytest.raises(errors.AuthenticationFailed, match="offers none of the ntlm schemes"):
                session.send(build.build_get(session.header_options, JOB_URI, {"InstanceID": RUNNING}))
        assert server.stats.requests == 1 and server.stats.invokes == 0


def _client_secrets(secret: str) -> list[object]:
    """Live objects holding NTLM client credentials: pyspnego NT-hash credentials for ``secret``, and
    initiating security contexts."""
    found: list[object] = []
    for obj in gc.get_objects():
        credential = isinstance(obj, spnego.NTLMHash) and obj.nt_hash == secret
        if credential or (isinstance(obj, spnego.ContextProxy) and obj.usage == "initiate"):
            found.append(obj)
    return found


def test_the_nt_hash_and_the_context_live_no_longer_than_the_session(http_server: FakeWinRMServer) -> None:
    secret = nt_hash(CANARY_PASSWORD)
    gc.collect()
    assert _client_secrets(secret) == []
    session = WsmanSession(http_server.url, options(scheme="http"))
    session.send(build.build_get(session.header_options, JOB_URI, {"InstanceID": RUNNING}))
    assert len(_client_secrets(secret)) == 2  # the credential and the context, while the session is open
    assert secret not in repr(session) and CANARY_PASSWORD not in repr(session)
    session.close()
    gc.collect()
    assert _client_secrets(secret) == []


#: Memoised functions of the transport, and why what they keep is no secret.
ALLOWED_CACHES = {
    "hvjob.transport.http._trust_context": "a CA file path to a TLS context that trusts it; no client key",
}


def test_no_cache_in_the_transport_keeps_anything_per_call(http_server: FakeWinRMServer) -> None:
    """No memoised function may keep a credential for the process's life (the NT hash once was)."""
    with WsmanSession(http_server.url, options(scheme="http")) as session:
        session.send(build.build_get(session.header_options, JOB_URI, {"InstanceID": RUNNING}))
    caches = []
    for info in pkgutil.walk_packages(hvjob.transport.__path__, "hvjob.transport."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if hasattr(value, "cache_info") and getattr(value, "__module__", "") == info.name:
                caches.append((f"{info.name}.{name}", value))
    assert caches, "expected at least the boundary's cache of exception classes"
    for name, cached in caches:
        takes_arguments = bool(inspect.signature(cached).parameters)
        assert not takes_arguments or name in ALLOWED_CACHES or cached.cache_info().currsize == 0, name
