"""Shared test helpers: fixture paths, the real-capture directory, semantic XML comparison."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from lxml import etree

from hvjob.transport import ConnectionOptions, nt_hash

if TYPE_CHECKING:
    from hvjob.testing.sim import SimulatedCluster

pytest_plugins = ["pytester"]  # tests/test_secrets.py runs the canary hooks on a planted leak

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
REAL_RESPONSES = ROOT.parent / "shared" / "reference" / "real-responses"

#: A canary password used across the suite. The hooks below fail any test whose captured output,
#: logs (captured at DEBUG, wire traffic included) or failure report contain it, its NT hash, or an
#: authentication token, and the session when any file the tests wrote does; tests/test_secrets.py
#: scans the repository.
CANARY_PASSWORD = "Canary-Pa55w0rd-7f3e!"
CANARY_NT_HASH = nt_hash(CANARY_PASSWORD)

#: Files whose purpose is to hold the credential (the fake server's users file, Ansible extra-vars and
#: an inventory with ansible_password).
CREDENTIAL_STORES = ("users*.txt", "secrets.yml", "*password*", "hosts.ini")  # hosts.ini: ansible_password

# pyspnego logs every NTLM token at DEBUG ("NTLM step input/output"): challenge plus response is an
# offline-crackable hash. The CLI keeps third-party loggers at WARNING; the suite runs the same way,
# so that the scan below sees what hvjob's own loggers (hvjob.*, all at DEBUG) write.
logging.getLogger("spnego").setLevel(logging.WARNING)


def _base64_forms(signature: bytes) -> list[str]:
    """The base64 text ``signature`` becomes at each of the three byte alignments in a longer token."""
    forms = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + signature + b"\0" * 3).decode()
        forms.append(encoded[(offset * 8 + 5) // 6 : ((offset + len(signature)) * 8) // 6])
    return forms


#: An NTLM message in base64, raw or inside SPNEGO ("NTLMSSP\0" at any alignment).
_NTLM_TOKEN = re.compile("|".join(map(re.escape, _base64_forms(b"NTLMSSP\x00"))))
#: An HTTP authentication header value: a Negotiate/NTLM/Kerberos/CredSSP token or Basic credentials
#: (base64 of binary data has capitals or digits; prose such as "NTLM negotiate/authenticate" has not).
_AUTH_HEADER_VALUE = re.compile(
    r"\b(?i:negotiate|ntlm|kerberos|credssp|basic)\s+(?=[A-Za-z0-9+/]*[0-9A-Z+])[A-Za-z0-9+/]{16,}={0,2}"
)


def leaks(text: str) -> list[str]:
    """What secret ``text`` holds, by kind (never the secret itself)."""
    found = []
    if CANARY_PASSWORD in text:
        found.append("the canary password")
    if CANARY_NT_HASH in text.lower():
        found.append("the canary password's NT hash")
    if _NTLM_TOKEN.search(text):
        found.append("an NTLM token")
    if _AUTH_HEADER_VALUE.search(text):
        found.append("an authentication token or Basic credentials")
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    texts = [content for title, content in report.sections if title.endswith(report.when)]  # this phase's own
    texts.append(report.longreprtext or "")
    found = sorted({kind for text in texts for kind in leaks(text)})
    if found:
        report.outcome = "failed"
        report.longrepr = (
            f"a secret appeared in the output, logs or report of {item.nodeid} ({report.when}): " + ", ".join(found)
        )
        # The report must not show them either (a CI log is as public as a file).
        report.sections = [
            (title, "[withheld: it held a secret]" if leaks(text) else text) for title, text in report.sections
        ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Scan every file the tests wrote (recordings, fixtures, logs, outputs) for the same secrets."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    base = factory.getbasetemp()
    found = []
    for path in base.rglob("*"):
        if not path.is_file() or path.is_symlink() or any(path.match(p) for p in CREDENTIAL_STORES):
            continue
        try:
            kinds = leaks(path.read_bytes().decode("latin-1"))
        except OSError:
            continue
        if kinds:
            found.append(f"{path} ({', '.join(kinds)})")
    if found:
        session.config.get_terminal_writer().line(
            "\nsecrets found in files written by the tests:\n  " + "\n  ".join(found), red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """The CLI configures logging when it runs; in this process (click's CliRunner) that must not
    outlive the test, or later tests would stop capturing hvjob's DEBUG log for the canary scan."""
    root, ours = logging.getLogger(), logging.getLogger("hvjob")
    saved = (list(root.handlers), root.level, ours.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])  # setLevel, not assignment: it also clears logging's level cache
    ours.setLevel(saved[2])


def real_responses_dir() -> Path:
    if not REAL_RESPONSES.is_dir():
        pytest.skip("../shared/reference/real-responses is absent (cloned without ../shared)")
    return REAL_RESPONSES


_UUID = re.compile(r"uuid:[0-9A-Fa-f-]{36}")


def canonical(xml: bytes | str) -> str:
    """C14N form with MessageIDs normalised, whitespace between elements dropped."""
    data = xml.encode() if isinstance(xml, str) else xml
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    root = etree.fromstring(data, parser)
    text = etree.tostring(root, method="c14n2", strip_text=True).decode()  # type: ignore[call-overload]  # stubs lack strip_text
    return _UUID.sub("uuid:X", text)


# --- fake-server fixtures ------------------------------------------------------------------------

SCENARIOS = FIXTURES / "scenarios"
JOB_URI = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/HyperVCluster/v2/Msvm_CollectionReferencePointExportJob"


def job_id(n: int) -> str:
    """The InstanceIDs used by fixtures/generate_handwritten.py."""
    return f"5F3C2A10-7B4D-4E8A-9C61-{n:012X}"


@pytest.fixture(scope="session")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.txt"
    path.write_text(f":alice:{CANARY_PASSWORD}\nCONTOSO:bob:{CANARY_PASSWORD}x\n")
    return path


@pytest.fixture
def cluster(users_file: Path) -> Iterator[SimulatedCluster]:
    """The default three-node simulated cluster with alice's account, its clock stopped: time
    moves only when a test says (a test module may define a cluster of its own instead)."""
    from hvjob.testing.sim import SimulatedCluster

    with SimulatedCluster(users_file=users_file, username="alice", password=CANARY_PASSWORD, speed=0) as running:
        yield running


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from hvjob.testing import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def http_server(users_file: Path):  # type: ignore[no-untyped-def]
    from hvjob.testing import FakeWinRMServer

    with FakeWinRMServer(SCENARIOS, users_file=users_file) as server:
        yield server


@pytest.fixture
def https_server(users_file: Path, pki):  # type: ignore[no-untyped-def]
    from hvjob.testing import FakeWinRMServer

    with FakeWinRMServer(SCENARIOS, users_file=users_file, tls=pki.server_context()) as server:
        yield server


def options(**kw: Any) -> ConnectionOptions:
    base: dict[str, Any] = {
        "username": "alice",
        "password": CANARY_PASSWORD,
        "connect_timeout": 5,
        "operation_timeout": 5,
        "read_timeout_margin": 2,
    }
    base.update(kw)
    return ConnectionOptions(**base)
