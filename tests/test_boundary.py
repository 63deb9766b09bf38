"""The exception boundary: every exception class of the transport's libraries, injected at every
seam of a real session, arrives as the hvjob type and exit code docs/transport.md documents.

The expectations are read from the tables in docs/transport.md, so the documentation and the code
cannot drift apart. Each injection replaces one foreign call with one that raises:

    connect   spnego.client (creating the security context)
    send      urllib3's HTTPConnectionPool.urlopen, once the session is authenticated
    receive   urllib3's HTTPResponse.read (reading the body), once authenticated
    seal      the live context's wrap_winrm
    unseal    the live context's unwrap_winrm
"""

from __future__ import annotations

import builtins
import http.client
import importlib
import importlib.util
import inspect
import re
import socket
import ssl
import struct
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import spnego
import urllib3.connectionpool
import urllib3.response

from conftest import JOB_URI, ROOT, job_id, options
from hvjob import errors
from hvjob.fanout import FanoutReport
from hvjob.jobs import OperationResult
from hvjob.testing import FakeWinRMServer
from hvjob.transport import SEAMS, WsmanSession
from hvjob.wire import build

LIBRARIES = (
    "requests.exceptions",
    "urllib3.exceptions",
    "ssl",
    "spnego.exceptions",
    "gssapi.exceptions",
    "gssapi.raw.misc",
    "krb5",
    "requests_credssp.exceptions",  # no longer used by hvjob; its errors still may not escape
)
#: Builtin exceptions these libraries raise (sockets, http.client, struct on a garbled token ...).
BUILTIN = (
    OSError,
    ConnectionResetError,
    ConnectionRefusedError,
    ConnectionAbortedError,
    BrokenPipeError,
    TimeoutError,
    socket.gaierror,
    socket.herror,
    http.client.RemoteDisconnected,
    http.client.IncompleteRead,
    http.client.BadStatusLine,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    struct.error,
    UnicodeDecodeError,
    MemoryError,
    RuntimeError,
)
DOC = (ROOT / "docs" / "transport.md").read_text(encoding="utf-8")


def _resolve(dotted: str) -> type[BaseException] | None:
    """A class named in the docs: ``module.Class``, or a builtin by name; None if not installed."""
    module_name, _, name = dotted.rpartition(".")
    if not module_name:
        found = getattr(builtins, name)
        assert isinstance(found, type)
        return found
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    found = getattr(module, name)
    assert isinstance(found, type) and issubclass(found, BaseException), dotted
    return found


@dataclass(frozen=True)
class Row:
    classes: tuple[type[BaseException], ...]
    cells: dict[str, str]


def documented_rows() -> list[Row]:
    section = DOC[DOC.index("| foreign exception | connect |") :]
    table = section[: section.index("\n\n")]
    header, _, *lines = table.splitlines()
    seams = [cell.strip() for cell in header.strip().strip("|").split("|")][1:]
    assert tuple(seams) == SEAMS
    rows = []
    for line in lines:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        names = re.findall(r"`([^`]+)`", cells[0])
        classes = tuple(cls for cls in map(_resolve, names) if cls is not None)
        rows.append(Row(classes, dict(zip(seams, cells[1:], strict=True))))
    return rows


def documented_unsent() -> tuple[type[BaseException], ...]:
    line = next(line for line in DOC.splitlines() if line.startswith("Proof that nothing was written"))
    return tuple(cls for cls in map(_resolve, re.findall(r"`([^`]+)`", line)) if cls is not None)


def documented_exit_codes() -> dict[str, int]:
    section = DOC[DOC.index("| type | exit code |") :]
    table = section[: section.index("\n\n")]
    return {
        cells[0]: int(cells[1])
        for line in table.splitlines()[2:]
        for cells in [[cell.strip() for cell in line.strip().strip("|").split("|")]]
    }


ROWS = documented_rows()
UNSENT = documented_unsent()
EXIT_CODES = documented_exit_codes()


def expected(cls: type[BaseException], seam: str, invoke: bool) -> str:
    """The documented type ('timeout (connect)' kept apart from 'timeout') for ``cls`` at ``seam``."""
    for row in ROWS:
        if not issubclass(cls, row.classes):
            continue
        cell = row.cells[seam]
        if cell == "↓":
            continue
        assert cell != "—", f"{cls} reached an unreachable cell at {seam}"
        base, _, alternative = cell.partition(" or ")
        sent = seam == "receive" or (seam == "send" and not issubclass(cls, UNSENT))
        return alternative if alternative and invoke and sent else base
    raise AssertionError(f"no documented row for {cls} at {seam}")


def foreign_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = list(BUILTIN)
    for name in LIBRARIES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        top = name.partition(".")[0]
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Exception) and not issubclass(obj, Warning) and obj.__module__.startswith(top):
                found.append(obj)
    return list(dict.fromkeys(found))


def instance(cls: type[BaseException]) -> BaseException:
    """An instance of ``cls`` made as a library would, as far as its constructor allows."""
    for args in ((), ("boom",), (None, "boom"), ("boom", "boom"), (1, "boom"), (None, None, "boom"), (1, 2)):
        try:
            return cls(*args)
        except Exception:
            continue
    return cls.__new__(cls)


CLASSES = foreign_classes()


def test_the_enumeration_covers_the_libraries() -> None:
    names = {cls.__module__.partition(".")[0] for cls in CLASSES}
    assert {"requests", "urllib3", "ssl", "spnego", "builtins"} <= names
    assert len([cls for cls in CLASSES if cls.__module__.partition(".")[0] not in ("gssapi", "krb5")]) > 90
    if importlib.util.find_spec("gssapi") is not None:  # pyspnego[kerberos], the kdc extra
        assert {"gssapi", "krb5"} <= names


def test_every_documented_class_exists_and_every_row_is_used() -> None:
    # A renamed class in a library (or a typo here) must fail, not silently drop a row.
    for row in ROWS:
        assert row.classes, row
    used = {
        id(row) for cls in CLASSES for seam in SEAMS for row in ROWS if issubclass(cls, row.classes) and row.cells[seam]
    }
    assert len(used) == len(ROWS)


class Injector:
    """Sessions against one fake server, with one foreign call made to raise."""

    def __init__(self, server: FakeWinRMServer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = server
        self.monkeypatch = monkeypatch
        self.contexts: list[Any] = []
        real_client = spnego.client

        def recording_client(*args: Any, **kwargs: Any) -> Any:
            context = real_client(*args, **kwargs)
            self.contexts.append(context)
            return context

        monkeypatch.setattr(spnego, "client", recording_client)
        self._recording = recording_client

    def request(self, session: WsmanSession, invoke: bool) -> build.WsmanRequest:
        if invoke:
            return build.build_invoke(
                session.header_options, JOB_URI, "KillJob", {"DeleteOnKill": False}, {"InstanceID": job_id(0x100)}
            )
        return build.build_get(session.header_options, JOB_URI, {"InstanceID": job_id(0x300)})

    def run(self, seam: str, exc: BaseException, invoke: bool) -> errors.HvjobError:
        def raiser(*args: Any, **kwargs: Any) -> Any:
            raise exc

        with self.monkeypatch.context() as patch, WsmanSession(self.server.url, options(scheme="http")) as session:
            if seam == "connect":
                patch.setattr(spnego, "client", raiser)
            else:
                session.send(self.request(session, invoke=False))  # authenticated and sealing
                context = self.contexts[-1]
                targets: dict[str, tuple[Any, str]] = {
                    "send": (urllib3.connectionpool.HTTPConnectionPool, "urlopen"),
                    "receive": (urllib3.response.HTTPResponse, "read"),
                    "seal": (context, "wrap_winrm"),
                    "unseal": (context, "unwrap_winrm"),
                }
                owner, name = targets[seam]
                patch.setattr(owner, name, raiser)
            with pytest.raises(errors.HvjobError) as info:
                session.send(self.request(session, invoke))
        return info.value


@pytest.fixture
def injector(http_server: FakeWinRMServer, monkeypatch: pytest.MonkeyPatch) -> Injector:
    return Injector(http_server, monkeypatch)


def _type_of(error: errors.HvjobError) -> str:
    if isinstance(error, errors.RequestTimedOut) and error.connect:
        return "timeout (connect)"
    if isinstance(error, errors.ConnectionFailed) and error.answered:
        return "connection (answered)"
    return error.type


def _caused_by(error: BaseException, original: BaseException) -> bool:
    """``original`` is in ``error``'s chain of causes, and that chain has no cycle."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None:
        assert id(current) not in seen, f"cycle in the causes of {error!r}"
        seen.add(id(current))
        if current is original:
            return True
        current = current.__cause__
    return False


def exit_code(error: errors.HvjobError) -> int:
    return FanoutReport("kill", [OperationResult("h", "kill", error=error)]).exit_code


@pytest.mark.parametrize("invoke", [False, True], ids=["get", "invoke"])
@pytest.mark.parametrize("seam", SEAMS)
def test_every_foreign_exception_arrives_as_its_documented_type(injector: Injector, seam: str, invoke: bool) -> None:
    wrong = []
    for cls in CLASSES:
        exc = instance(cls)
        error = injector.run(seam, exc, invoke)
        want = expected(cls, seam, invoke)
        got = _type_of(error)
        if got != want or not _caused_by(error, exc) or error.host != injector.server.url:
            wrong.append(f"{cls.__module__}.{cls.__qualname__}: {got} (documented {want}): {error.message}")
        elif want != "usage" and exit_code(error) != EXIT_CODES[want]:
            wrong.append(f"{cls.__qualname__}: exit {exit_code(error)} (documented {EXIT_CODES[want]})")
    assert wrong == []


def test_a_usage_error_raised_inside_a_host_exits_2(injector: Injector) -> None:
    error = injector.run("send", requests.exceptions.InvalidURL("boom"), invoke=True)
    assert error.type == "usage"
    assert exit_code(error) == EXIT_CODES["usage"]


def test_interrupts_are_not_translated(injector: Injector) -> None:
    for seam in SEAMS:
        with pytest.raises(KeyboardInterrupt):
            injector.run(seam, KeyboardInterrupt(), invoke=True)


def test_the_boundary_keeps_what_the_fault_proves(injector: Injector) -> None:
    """Spot checks in words, beside the table: what an operator reads."""
    refused = injector.run("send", requests.exceptions.ConnectionError(ConnectionRefusedError("refused")), invoke=True)
    assert isinstance(refused, errors.ConnectionFailed) and refused.unreachable  # nothing was sent: no doubt
    lost = injector.run("receive", requests.exceptions.ChunkedEncodingError("cut"), invoke=True)
    assert isinstance(lost, errors.OutcomeUnknown) and "may have run" in lost.message
    tampered = injector.run("unseal", spnego.exceptions.BadMICError(), invoke=False)
    assert isinstance(tampered, errors.ProtocolError) and "cannot decrypt" in tampered.message
    unresolved = injector.run("send", socket.gaierror(-2, "Name or service not known"), invoke=False)
    assert isinstance(unresolved, errors.NameResolutionFailed)
    verify = injector.run("send", ssl.SSLCertVerificationError("certificate verify failed"), invoke=True)
    assert isinstance(verify, errors.TLSFailed)
