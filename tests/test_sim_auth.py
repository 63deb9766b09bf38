"""The simulator behind every authentication the front speaks: CredSSP, Kerberos (a real MIT
KDC), NTLM over HTTPS with strict channel binding, and a Basic-only client over plain HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import CANARY_PASSWORD
from hvjob.jobs import JobClient
from hvjob.testing import make_pki, tls
from hvjob.testing.kdc import MiniKDC, missing_tools
from hvjob.testing.sim import SimulatedCluster, default
from hvjob.transport import ConnectionOptions, WsmanSession


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "users.txt"
    path.write_text(f":alice:{CANARY_PASSWORD}\n")
    return path


@pytest.fixture(scope="module")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> tls.TestPKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _options(**kw: Any) -> ConnectionOptions:
    base: dict[str, Any] = {"username": "alice", "password": CANARY_PASSWORD, "operation_timeout": 5.0}
    base.update(kw)
    return ConnectionOptions(**base)


def _stop_and_check(cluster: SimulatedCluster, options: ConnectionOptions) -> None:
    with WsmanSession(cluster.url("HVNODE01"), options) as session:
        result = JobClient(session).stop(default.RUNNING)
    assert result.ok and result.changed, result.to_dict()
    assert cluster.job(default.RUNNING)["state"] == "Killed"
    (entry,) = cluster.log()
    assert entry["method"] == "RequestStateChange"


def test_credssp_over_http(users: Path) -> None:  # hvjob's CredSSP is pyspnego's: nothing else to install
    with SimulatedCluster(speed=0, users_file=users, auth=("credssp",)) as cluster:
        _stop_and_check(cluster, _options(transport="credssp", scheme="http"))
        assert cluster.log()[0]["user"].lower().endswith("alice")


def test_ntlm_over_https_with_strict_channel_binding(users: Path, test_pki: tls.TestPKI) -> None:
    with SimulatedCluster(speed=0, users_file=users, tls=test_pki.server_context(), cbt="strict") as cluster:
        assert cluster.url().startswith("https://")
        _stop_and_check(cluster, _options(ca_trust_path=str(test_pki.ca_cert)))


def test_basic_over_plain_http_when_allowed(users: Path) -> None:
    with SimulatedCluster(speed=0, users_file=users, auth=("basic",), allow_unencrypted=True) as cluster:
        _stop_and_check(cluster, _options(transport="basic", scheme="http", allow_unencrypted=True))


@pytest.fixture
def kdc(tmp_path: Path) -> Iterator[MiniKDC]:
    try:
        import gssapi  # noqa: F401
        import krb5  # noqa: F401
    except ImportError as exc:
        reason: str | None = f"Kerberos Python libraries missing: {exc}"
    else:
        reason = "MIT KDC not installed: " + ", ".join(missing_tools()) if missing_tools() else None
    if reason:
        if os.environ.get("HVJOB_REQUIRE_KDC") == "1":
            pytest.fail(reason + " (HVJOB_REQUIRE_KDC=1)")
        pytest.skip(reason)
    with MiniKDC(tmp_path / "kdc") as realm, realm.activated():
        realm.kinit()
        yield realm


def test_kerberos_with_message_encryption(kdc: MiniKDC, users: Path) -> None:
    with SimulatedCluster(speed=0, users_file=users, auth=("negotiate",), keytab=kdc.keytab) as cluster:
        options = ConnectionOptions(
            transport="kerberos", scheme="http", spn_hostname=kdc.host_name, operation_timeout=5.0
        )
        _stop_and_check(cluster, options)
        assert "@" in cluster.log()[0]["user"]  # a Kerberos principal
