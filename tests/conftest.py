"""Shared test helpers: fixture paths, the real-capture directory, semantic XML comparison."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

pytest_plugins = ["pytester"]  # tests/test_secrets.py runs the canary hooks on a planted leak

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
REAL_RESPONSES = ROOT.parent / "shared" / "reference" / "real-responses"

#: A canary password used across the suite. The hooks below fail any test whose captured output,
#: logs (captured at DEBUG, wire traffic included) or failure report contain it, and the session
#: when any file the tests wrote does; tests/test_secrets.py scans the repository.
CANARY_PASSWORD = "Canary-Pa55w0rd-7f3e!"

#: Files whose purpose is to hold the credential (the fake server's users file, Ansible extra-vars and
#: an inventory with ansible_password).
CREDENTIAL_STORES = ("users*.txt", "secrets.yml", "*password*", "hosts.ini")  # hosts.ini: ansible_password


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    texts = [content for title, content in report.sections if title.endswith(report.when)]  # this phase's own
    texts.append(report.longreprtext or "")
    if any(CANARY_PASSWORD in text for text in texts):
        report.outcome = "failed"
        report.longrepr = f"the canary password appeared in the output, logs or report of {item.nodeid} ({report.when})"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Scan every file the tests wrote (recordings, fixtures, logs, outputs) for the canary."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    base = factory.getbasetemp()
    leaks = []
    for path in base.rglob("*"):
        if not path.is_file() or path.is_symlink() or any(path.match(p) for p in CREDENTIAL_STORES):
            continue
        try:
            if CANARY_PASSWORD.encode() in path.read_bytes():
                leaks.append(path)
        except OSError:
            continue
    if leaks:
        session.config.get_terminal_writer().line(
            "\ncanary password found in files written by the tests:\n  " + "\n  ".join(map(str, leaks)), red=True
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
    text = etree.tostring(root, method="c14n2", strip_text=True).decode()
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


def options(**kw):  # type: ignore[no-untyped-def]
    from hvjob.transport import ConnectionOptions

    base = {
        "username": "alice",
        "password": CANARY_PASSWORD,
        "connect_timeout": 5,
        "operation_timeout": 5,
        "read_timeout_margin": 2,
    }
    base.update(kw)
    return ConnectionOptions(**base)
