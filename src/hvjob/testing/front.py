"""The HTTP/1.1 and authentication front of the fake WinRM listeners, and the seam behind it.

A :class:`WinRMFront` behaves like a Windows WinRM listener where that matters to a client:
HTTP/1.1 keep-alive, ``401`` challenges with ``Content-Length: 0`` that never close the connection,
NTLM and Negotiate through pyspnego's acceptor (one context per connection), Kerberos with a keytab,
CredSSP, Basic, client certificates, message encryption (``multipart/encrypted``) both ways, HTTPS
with channel-binding checks (relaxed or strict), the unauthenticated Identify
(``WSMANIDENTIFY: unauthenticated``), and HTTP errors in the shapes HTTP.sys and WinRM send them.
Every response is written in one ``sendall`` with TCP_NODELAY (NOTES 4).

What answers a request is a :class:`Backend`: plaintext envelope and context (node, user) in, a
:class:`Reply` out. Scenario replay (:mod:`hvjob.testing.replay`) is one backend, the simulated
cluster (:mod:`hvjob.testing.sim`) another. A backend may also serve the JSON control API under
``/_hvjob/`` (unauthenticated, loopback clients only).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import selectors
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import spnego
from spnego.channel_bindings import GssChannelBindings

from hvjob.errors import HvjobError
from hvjob.testing.tls import client_identities
from hvjob.transport import nt_hash
from hvjob.transport.sealing import seal, unseal
from hvjob.wire import framing
from hvjob.wire.build import new_message_id

log = logging.getLogger("hvjob.testing.server")

SOAP_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"

#: What Windows' WinRM reports in Identify (NOTES 5): the real version only once authenticated.
OS_VERSION_AUTHENTICATED = "OS: 10.0.20348 SP: 0.0 Stack: 3.0"  # Windows Server 2022
OS_VERSION_ANONYMOUS = "OS: 0.0.0 SP: 0.0 Stack: 3.0"

IDENTIFY_RESPONSE = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
    "<s:Header/><s:Body><wsmid:IdentifyResponse>"
    "<wsmid:ProtocolVersion>http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd</wsmid:ProtocolVersion>"
    "<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>"
    "<wsmid:ProductVersion>{version}</wsmid:ProductVersion>"
    "{profiles}</wsmid:IdentifyResponse></s:Body></s:Envelope>"
)
_PROFILES = (
    "<wsmid:SecurityProfiles>"
    "<wsmid:SecurityProfileName>http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/spnego-kerberos"
    "</wsmid:SecurityProfileName></wsmid:SecurityProfiles>"
)

#: What a WinRM client sends in ``Authorization`` to authenticate with its TLS client certificate.
CERTIFICATE_AUTH_HEADER = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"

_SCHEME_NAMES = {"negotiate": "Negotiate", "ntlm": "NTLM", "credssp": "CredSSP", "basic": "Basic"}

#: The prefix of the control API every listener serves beside ``/wsman`` (as moto serves /moto-api/).
CONTROL_PREFIX = "/_hvjob/"

# HTTP.sys answers a URL no service registered, and a request it cannot parse, with these pages
# (Content-Type text/html; charset=us-ascii), not with the WinRM service's empty bodies.
_HTTPSYS_PAGE = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n'
    "<HTML><HEAD><TITLE>{title}</TITLE>\r\n"
    '<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>\r\n'
    "<BODY><h2>{title}</h2>\r\n<hr><p>HTTP Error {status}. {text}</p>\r\n</BODY></HTML>\r\n"
)
_HTTPSYS_TEXTS = {
    400: ("Bad Request", "The request is badly formed."),
    404: ("Not Found", "The requested resource is not found."),
    411: ("Length Required", "The request must be chunked or have a content length."),
    413: ("Request Entity Too Large", "The page was not displayed because the request entity is too large."),
    431: ("Request Header Fields Too Large", "The size of the request headers is too long."),
    505: ("HTTP Version Not Supported", "The request has an invalid HTTP version."),
}
_MAX_BODY = 16 * 1024 * 1024


def read_users_file(path: Path) -> dict[str, str]:
    """``DOMAIN:USER:PASSWORD`` lines (pyspnego's NTLM user file); empty DOMAIN allowed."""
    users: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3 or not parts[1]:
            raise HvjobError(f"{path}:{number}: expected DOMAIN:USER:PASSWORD")
        domain, user, password = parts
        users[f"{domain}\\{user}".lower() if domain else user.lower()] = password
    return users


@dataclass
class ServerStats:
    requests: int = 0
    connections: int = 0
    auth_handshakes: int = 0
    auth_rejected: int = 0  # credentials refused: what an account lockout policy would count
    invokes: int = 0
    handler_errors: int = 0  # exceptions that escaped a request handler: a bug in the fake
    cookies: list[str] = field(default_factory=list)  # Cookie headers received, in order
    unmatched: list[Any] = field(default_factory=list)  # replay: RequestPatterns no fixture answered
    served: list[tuple[str | None, Mapping[str, str]]] = field(default_factory=list)


# --- the seam ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrontRequest:
    """One authenticated WS-Man request as the backend sees it: decrypted, with who sent it where."""

    plaintext: bytes
    machine: str  # the node this listener is
    user: str | None  # the authenticated principal
    encrypted: bool
    stats: ServerStats


@dataclass
class Reply:
    """What a backend answers: a status and an envelope, or a transport-level fault in ``inject``.

    ``inject`` uses the injection vocabulary of docs/fixtures.md; ``relates_to`` is the request's
    MessageID, which an injected ``reply`` is re-addressed to.
    """

    status: int
    body: str | bytes
    content_type: str = SOAP_CONTENT_TYPE
    inject: Mapping[str, Any] = field(default_factory=dict)
    relates_to: str | None = None


@dataclass(frozen=True)
class ControlReply:
    status: int
    data: Any


class Backend(Protocol):
    """What answers behind a front: scenario replay, or a simulated cluster's node."""

    def answer(self, request: FrontRequest) -> Reply: ...

    def control(self, method: str, path: str, body: bytes) -> ControlReply | None:
        """The JSON control API under ``/_hvjob/``; None when this backend has none."""
        ...


def identify_reply(*, authenticated: bool) -> str:
    """The IdentifyResponse Windows sends: no addressing headers; the real OS version only when authenticated."""
    if authenticated:
        return IDENTIFY_RESPONSE.format(version=OS_VERSION_AUTHENTICATED, profiles=_PROFILES)
    return IDENTIFY_RESPONSE.format(version=OS_VERSION_ANONYMOUS, profiles="")


_RELATES_TO = re.compile(r"(<(?:[A-Za-z0-9_]+:)?RelatesTo\b[^>]*>)[^<]*(</(?:[A-Za-z0-9_]+:)?RelatesTo>)")
_REPLY_MESSAGE_ID = re.compile(r"(<(?:[A-Za-z0-9_]+:)?MessageID\b[^>]*>)[^<]*(</(?:[A-Za-z0-9_]+:)?MessageID>)")
_ACTION = re.compile(r"(<(?:\w+:)?Action\b[^>]*>)[^<]*(</(?:\w+:)?Action>)")
_REQUEST_MESSAGE_ID = re.compile(rb"<(?:[\w.-]+:)?MessageID(?:\s[^>]*)?>\s*([^<\s]+)\s*</")


def request_message_id(plaintext: bytes) -> str | None:
    """The request's MessageID, whatever attributes or whitespace its element carries."""
    match = _REQUEST_MESSAGE_ID.search(plaintext)
    return match.group(1).decode("utf-8", "replace") if match else None


def readdress(text: str, relates_to: str | None) -> str:
    """A canned envelope answering this request: RelatesTo = its MessageID, and a fresh MessageID."""
    if relates_to is not None:
        text = _RELATES_TO.sub(lambda m: f"{m.group(1)}{relates_to}{m.group(2)}", text, count=1)
    return _REPLY_MESSAGE_ID.sub(lambda m: f"{m.group(1)}{new_message_id()}{m.group(2)}", text, count=1)


def apply_injection(reply: Reply) -> tuple[int, bytes, str]:
    """The status, payload and Content-Type after the envelope-level injections (docs/fixtures.md).

    Transport-level ones (``close``, ``latency_ms``, ``headers``, ``corrupt``) are applied by the
    front when it seals and sends.
    """
    injection = reply.inject
    status, text = reply.status, reply.body
    if isinstance(injection.get("reply"), str):  # another response, e.g. a captured fault, answering this one
        text = readdress(str(injection["reply"]), reply.relates_to)
        status = 500 if ":Fault>" in text else 200
    if isinstance(text, str):
        relates = injection.get("relates_to")
        if relates is not None:
            text = text if relates == "omit" else _RELATES_TO.sub(rf"\g<1>{relates}\g<2>", text, count=1)
        if "action" in injection:
            text = _ACTION.sub(rf"\g<1>{injection['action']}\g<2>", text)
        payload = text.encode("utf-8")
    else:
        payload = text
    status = int(injection.get("status", status))
    if injection.get("body") == "malformed":
        payload = b"<s:Envelope><not-closed>" + payload[:40]
    elif injection.get("body") == "truncated":
        payload = payload[: len(payload) // 2]
    elif injection.get("body") == "oversized":
        payload = b"<x>" + b"A" * int(injection.get("size", 8 * 1024 * 1024)) + b"</x>"
    elif isinstance(injection.get("raw_body"), (str, bytes)):
        raw = injection["raw_body"]
        payload = raw if isinstance(raw, bytes) else raw.encode("utf-8")
    return status, payload, str(injection.get("content_type", reply.content_type))


def seal_reply(ctx: Any, protocol: str, payload: bytes, corrupt: str | None = None) -> tuple[bytes, str]:
    """Encrypt a reply for a connection that sent an encrypted request: body and Content-Type.

    As Windows sends them: CredSSP replies over 16 KiB go as ``multipart/x-multi-encrypted``, one
    part per 16 KiB. ``corrupt`` (``signature`` or ``payload``) damages the first part's signature
    or the last part's sealed payload, for fault injection.
    """
    content_type, body = seal(ctx, protocol, payload)
    if corrupt not in ("signature", "payload"):
        return body, content_type
    parts = framing.unframe_parts(body)
    first, last = parts[0], parts[-1]
    if corrupt == "signature" and first.header:
        parts[0] = replace(first, header=bytes([first.header[0] ^ 0xFF]) + first.header[1:])
    elif corrupt == "payload" and last.sealed:
        parts[-1] = replace(last, sealed=last.sealed[:-1] + bytes([last.sealed[-1] ^ 0xFF]))
    return framing.frame_parts(parts), content_type


# --- the listener --------------------------------------------------------------------------------


class WinRMFront:
    """One WinRM listener on ``host:port`` (port 0 picks a free one) answering through ``backend``.

    ``auth``: schemes offered, from ``negotiate``, ``ntlm``, ``basic``, ``credssp``, ``certificate``.
    Negotiate accepts NTLM always and Kerberos when ``keytab`` (the ``HTTP/host`` service key, see
    :mod:`hvjob.testing.kdc`) is given and ``KRB5_CONFIG`` points at its realm.
    ``cbt``: ``relaxed`` (a client without channel bindings is accepted) or ``strict``.
    ``allow_unencrypted``: Windows' AllowUnencrypted (default: only over HTTPS).
    ``idle_timeout``: seconds after which an idle keep-alive connection is closed.
    ``latency_ms``: added before every response, authentication legs included.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        users_file: Path | str | None = None,
        auth: Iterable[str] = ("negotiate", "basic"),
        tls: ssl.SSLContext | None = None,
        cbt: str = "relaxed",
        allow_unencrypted: bool | None = None,
        idle_timeout: float | None = None,
        latency_ms: float = 0.0,
        machine: str = "HVNODE01",
        keytab: Path | str | None = None,
        poll_interval: float = 0.05,
    ) -> None:
        self.backend = backend
        self.users_file = Path(users_file) if users_file else None
        self.users = read_users_file(self.users_file) if self.users_file else {}
        self.user_names = {key.rpartition("\\")[2] for key in self.users}  # without their domains
        self.keytab = Path(keytab) if keytab else None
        self.poll_interval = poll_interval  # how soon stop() is noticed; a large fleet wants it longer
        self.auth = tuple(a.lower() for a in auth)
        self.tls = tls
        self.cbt = cbt
        # Windows' AllowUnencrypted is false by default: plain HTTP needs message encryption.
        self.allow_unencrypted = (tls is not None) if allow_unencrypted is None else allow_unencrypted
        self.idle_timeout = idle_timeout
        self.latency_ms = latency_ms
        self.machine = machine
        self.stats = ServerStats()
        self._lock = threading.Lock()
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.front = self
        self._thread: threading.Thread | None = None
        self._cert_hash: bytes | None = None
        self._started = False
        self._group: ListenerGroup | None = None  # the group that accepts for this front, if any
        self._listen_lock = threading.Lock()
        self._reserved: socket.socket | None = None  # while not listening: the port, bound and refusing
        self._up = threading.Event()  # set while listening
        self._up.set()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/wsman"

    def prepare(self) -> None:
        """Everything start() does except running the accept loop (a ListenerGroup runs it)."""
        _ACCEPTOR_ENVIRONMENT.add(self)
        if self.tls is not None:
            self._cert_hash = _server_cert_hash(self.tls)
        self._started = True

    def start(self) -> WinRMFront:
        self.prepare()
        self._serve_in_thread()
        return self

    def _serve_in_thread(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": self.poll_interval},
            name=f"fake-winrm-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        with self._listen_lock:
            if self._thread is not None:
                self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_all()
            if self._thread is not None:
                self._thread.join(timeout=5)
                self._thread = None
            if self._reserved is not None:
                self._reserved.close()
                self._reserved = None
            if self._started:
                _ACCEPTOR_ENVIRONMENT.remove(self)
                self._started = False

    # --- the listener going away and coming back (a node restarting) ----------------------------

    @property
    def listening(self) -> bool:
        return self._reserved is None

    def stop_listening(self) -> None:
        """The listener goes away, as when the WinRM service stops: every open connection is closed
        and new ones are refused. The port stays reserved (bound, not listening), so that
        :meth:`start_listening` gets it back even while clients pick ephemeral ports."""
        with self._listen_lock:
            if not self._started or self._reserved is not None:
                return
            if self._group is not None:
                self._group.forget(self)
            elif self._thread is not None:
                self._httpd.shutdown()
                self._thread.join(timeout=5)
                self._thread = None
            address = self._httpd.server_address[:2]
            self._httpd.server_close()
            reserved = socket.socket(self._httpd.address_family, socket.SOCK_STREAM)
            reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            reserved.bind(address)
            self._reserved = reserved
            self._up.clear()
            self._httpd.close_all()

    def start_listening(self) -> None:
        """The listener is back on the same port (what the backend holds is untouched)."""
        with self._listen_lock:
            if not self._started or self._reserved is None:
                return
            reserved, self._reserved = self._reserved, None
            httpd = _HTTPServer(reserved.getsockname()[:2], _Handler, bind_and_activate=False)
            httpd.socket.close()
            httpd.socket = reserved
            httpd.server_address = reserved.getsockname()
            httpd.server_name, httpd.server_port = str(httpd.server_address[0]), int(httpd.server_address[1])
            httpd.server_activate()  # listen() on the reserved port
            httpd.front = self
            self._httpd = httpd
            if self._group is not None:
                self._group.adopt(self)
            else:
                self._serve_in_thread()
            self._up.set()

    def wait_listening(self, timeout: float | None = None) -> bool:
        """Block until the listener is up (at once if it is); False if ``timeout`` passed first."""
        return self._up.wait(timeout)

    def __enter__(self) -> WinRMFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def close_idle_connections(self) -> None:
        """Close every open keep-alive connection now, as Windows does after its idle timeout."""
        self._httpd.close_all()

    @property
    def open_connections(self) -> int:
        """Client connections not yet closed: tests wait on it instead of sleeping."""
        return self._httpd.open_count()

    def channel_bindings(self) -> GssChannelBindings | None:
        if self._cert_hash is None:
            return None
        return GssChannelBindings(application_data=b"tls-server-end-point:" + self._cert_hash)

    def check_basic(self, value: str) -> str | None:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        if not sep:
            return None
        expected = self.users.get(user.lower())
        if expected is not None and hmac.compare_digest(expected.encode(), password.encode()):
            return user
        return None

    def knows_ntlm_user(self, principal: str) -> bool:
        """The shared users file holds every live server's users; each server accepts only its own.

        A user listed without a domain is a local account: any domain the client names (go-ntlmssp
        names the challenge's TargetName) logs on to it, as on a workgroup Windows host (NOTES 5).
        """
        name = principal.lower()
        return name in self.users or name.rpartition("\\")[2] in self.users


class ListenerGroup:
    """Accept connections for many fronts on one thread (a selector over their listening sockets).

    A simulated cluster of 1,000 nodes then costs one accept thread, not one per node; each
    connection still gets its own handler thread, as with a front started alone.
    """

    def __init__(self, fronts: Sequence[WinRMFront]) -> None:
        self.fronts = list(fronts)
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> ListenerGroup:
        for front in self.fronts:
            front.prepare()
            front._group = self
            self._selector.register(front._httpd.socket, selectors.EVENT_READ, front._httpd)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._loop, name="fake-winrm-group", daemon=True)
        self._thread.start()
        return self

    def forget(self, front: WinRMFront) -> None:
        """Stop accepting for ``front`` (its listener is going away); the accept loop may still hold
        an event for it, which then fails on the closed socket and is skipped."""
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(front._httpd.socket)

    def adopt(self, front: WinRMFront) -> None:
        """Accept for ``front``'s new listening socket (epoll takes it while the loop waits)."""
        if not self._stopping.is_set():
            self._selector.register(front._httpd.socket, selectors.EVENT_READ, front._httpd)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            for key, _events in self._selector.select(timeout=5):
                httpd = key.data
                if httpd is None:
                    return
                try:
                    request, address = httpd.get_request()
                except OSError:  # a listener closed since the select (a node going away)
                    continue
                if httpd.verify_request(request, address):
                    try:
                        httpd.process_request(request, address)
                    except Exception:
                        httpd.handle_error(request, address)
                        httpd.shutdown_request(request)
                else:
                    httpd.shutdown_request(request)

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=10)
        for front in self.fronts:
            front.stop()
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()


# --- pyspnego's acceptor environment --------------------------------------------------------------


class _AcceptorEnvironment:
    """The environment pyspnego's acceptors read: ``NTLM_USER_FILE`` and ``KRB5_KTNAME``.

    Changing ``os.environ`` per handshake races with every thread that reads the environment
    (requests does, for proxies, in a client running in the same process: a test's, or a user's),
    so all fake servers of a process share one merged users file and one keytab. The variables
    are set when the first server starts and restored when the last one stops.

    A user listed without a domain is also written under every domain that a challenge named as
    its TargetName, so that go-ntlmssp's AUTHENTICATE (domain = TargetName) finds the account.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[int, WinRMFront] = {}
        self._entries: dict[int, list[str]] = {}  # each server's users, read and hashed once
        self._hashed: dict[tuple[str, str], list[str]] = {}  # users file (path, text) -> hashed lines
        self._target_names: set[str] = set()
        self._written: list[str] | None = None
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._saved: dict[str, str | None] = {}

    def add(self, server: WinRMFront) -> None:
        entries: list[str] = []
        if server.users_file is not None:
            text = server.users_file.read_text(encoding="utf-8")
            key = (str(server.users_file), text)
            cached = self._hashed.get(key)
            if cached is None:
                cached = self._hashed[key] = [_hashed_entry(line) for line in text.splitlines()]
            entries = cached
        with self._lock:
            keytabs = {s.keytab for s in [*self._servers.values(), server] if s.keytab is not None}
            if len(keytabs) > 1:
                raise HvjobError("fake servers in one process must share one keytab")
            if not self._servers:
                self._directory = tempfile.TemporaryDirectory(prefix="hvjob-fake-")
                self._saved = {key: os.environ.get(key) for key in ("NTLM_USER_FILE", "KRB5_KTNAME")}
                self._written = None
                os.environ["NTLM_USER_FILE"] = str(Path(self._directory.name) / "users.txt")
            self._servers[id(server)] = server
            self._entries[id(server)] = entries
            self._write(keytabs)

    def remove(self, server: WinRMFront) -> None:
        with self._lock:
            if self._servers.pop(id(server), None) is None:
                return
            del self._entries[id(server)]
            if self._servers:
                self._write({s.keytab for s in self._servers.values() if s.keytab is not None})
                return
            for key, value in self._saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            if self._directory is not None:
                self._directory.cleanup()
                self._directory = None
            self._target_names.clear()
            self._hashed.clear()

    def alias_target_name(self, target_name: str) -> None:
        """Make domain-less users reachable as ``TARGET\\user`` before the client answers a challenge."""
        name = target_name.strip()
        if not name or name.upper() in self._target_names:
            return
        with self._lock:
            if not self._servers:
                return
            self._target_names.add(name.upper())
            self._write({s.keytab for s in self._servers.values() if s.keytab is not None})

    def _write(self, keytabs: set[Path]) -> None:
        """Rewrite the merged users file when its lines change (servers of a fleet share theirs)."""
        assert self._directory is not None
        lines = list(dict.fromkeys(line for entries in self._entries.values() for line in entries))
        for target in sorted(self._target_names):
            lines.extend(_with_domain(line, target) for line in list(lines) if _is_domainless(line))
        lines = list(dict.fromkeys(lines))
        if lines != self._written:
            target_path = Path(self._directory.name) / "users.txt"
            staging = target_path.with_suffix(".new")
            staging.write_text("\n".join(lines) + "\n", encoding="utf-8")
            staging.chmod(0o600)
            staging.replace(target_path)  # atomic: a handshake never reads half a file
            self._written = lines
        keytab = f"FILE:{next(iter(keytabs))}" if keytabs else None
        if keytab is not None and os.environ.get("KRB5_KTNAME") != keytab:
            os.environ["KRB5_KTNAME"] = keytab


def _hashed_entry(line: str) -> str:
    """``DOMAIN:USER:PASSWORD`` as the smbpasswd-style line pyspnego also reads, with the NT hash
    computed once here instead of on every handshake. The LM hash is left empty (zeros), as on
    Windows since Vista (NoLMHash): NTLMv2 does not use it, and computing it is pure-Python DES."""
    domain, sep, rest = line.strip().partition(":")
    user, sep2, password = rest.partition(":")
    if not (sep and sep2 and user) or line.lstrip().startswith("#"):
        return line
    name = f"{domain}\\{user}" if domain else user
    return f"{name}:0:{'0' * 32}:{nt_hash(password).upper()}:[U          ]:LCT-00000000"


def _is_domainless(line: str) -> bool:
    fields = line.split(":")
    if len(fields) == 6:  # smbpasswd form: USER or DOMAIN\USER or USER@REALM first
        return "\\" not in fields[0] and "@" not in fields[0] and bool(fields[0])
    return len(fields) == 3 and not fields[0] and bool(fields[1])


def _with_domain(line: str, domain: str) -> str:
    fields = line.split(":")
    if len(fields) == 6:
        return ":".join([f"{domain}\\{fields[0]}", *fields[1:]])
    return ":".join([domain, *fields[1:]])


_ACCEPTOR_ENVIRONMENT = _AcceptorEnvironment()

_NTLM_CHALLENGE = b"NTLMSSP\x00\x02\x00\x00\x00"


def challenge_target_name(token: bytes) -> str | None:
    """The TargetName of an NTLM CHALLENGE (raw or inside SPNEGO), [MS-NLMP] 2.2.1.2; else None."""
    start = token.find(_NTLM_CHALLENGE)
    if start < 0 or len(token) < start + 24:
        return None
    length, _max, offset = struct.unpack_from("<HHI", token, start + 12)
    (flags,) = struct.unpack_from("<I", token, start + 20)
    raw = token[start + offset : start + offset + length]
    if len(raw) != length:
        return None
    unicode_names = bool(flags & 0x00000001)  # NTLMSSP_NEGOTIATE_UNICODE
    return raw.decode("utf-16-le" if unicode_names else "latin-1", "replace")


def _server_cert_hash(context: ssl.SSLContext) -> bytes | None:
    cert_path = getattr(context, "hvjob_cert_path", None)
    if not cert_path:
        return None
    pem = Path(cert_path).read_text()
    der = ssl.PEM_cert_to_DER_cert(pem[: pem.index("-----END CERTIFICATE-----") + 25])
    return hashlib.sha256(der).digest()


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", maxsplit=1)[0]).is_loopback
    except ValueError:
        return False


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512
    front: WinRMFront

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def track(self, sock: socket.socket, alive: bool) -> None:
        with self._open_lock:
            if alive:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def open_count(self) -> int:
        with self._open_lock:
            return len(self._open)

    def handle_error(self, request: Any, client_address: Any) -> None:
        with self.front._lock:
            self.front.stats.handler_errors += 1
        log.exception("fake server: unhandled error for %s", client_address)

    def close_all(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def setup(self) -> None:
        front = self.server.front
        raw: socket.socket = self.request
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._raw = raw
        self._tls_failed = False
        if front.tls is not None:
            raw.settimeout(10)
            try:
                tls_socket = front.tls.wrap_socket(raw, server_side=True)  # detaches ``raw``
            except (OSError, ssl.SSLError) as exc:
                log.debug("TLS handshake failed: %s", exc)
                self._tls_failed = True
            else:
                tls_socket.settimeout(None)
                self.request = self._raw = tls_socket
        self.server.track(self._raw, True)
        self.timeout = front.idle_timeout  # type: ignore[misc]  # per-connection idle close
        self.ctx: Any = None
        self.ctx_protocol: str | None = None
        self.authenticated_user: str | None = None
        self.final_token: str | None = None
        self.encryption_protocol: str | None = None
        with front._lock:
            front.stats.connections += 1
        super().setup()

    def handle(self) -> None:
        if self._tls_failed:
            return
        with contextlib.suppress(OSError, ssl.SSLError):
            super().handle()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.track(self._raw, False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    # --- HTTP plumbing -----------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        *,
        content_type: str | None = None,
        inject: Mapping[str, Any] | None = None,
    ) -> None:
        front = self.server.front
        inject = inject or {}
        delay = front.latency_ms + float(inject.get("latency_ms", 0))
        if delay:
            time.sleep(delay / 1000.0)
        if inject.get("close") == "before_response":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._raw.shutdown(socket.SHUT_RDWR)
            return
        if inject.get("close") == "reset":  # a TCP RST instead of an answer: linger 0, then close
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()  # its reference would keep the socket open past close()
                self._raw.close()
            return
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]
        lines.append("Server: Microsoft-HTTPAPI/2.0")
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.extend(f"{k}: {v}" for k, v in (*headers, *inject.get("headers", ())))
        if self.final_token is not None and status != 401:
            # The acceptor's last leg (Kerberos mutual authentication) rides on the first answer.
            lines.append(f"WWW-Authenticate: {self.final_token}")
            self.final_token = None
        lines.append(f"Content-Length: {len(body)}")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        if inject.get("close") == "mid_response":
            cut = len(payload) - max(1, len(body) // 2)
            with contextlib.suppress(OSError):
                self.wfile.write(payload[:cut])
                self.wfile.flush()
                self._raw.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(payload)
        if inject.get("close") == "after_response":
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """HTTP.sys's page for what it refuses itself (bad request line, oversized headers), never Python's."""
        self._send_httpsys(code if code in _HTTPSYS_TEXTS else 400)
        self.close_connection = True

    def _send_httpsys(self, status: int) -> None:
        title, text = _HTTPSYS_TEXTS[status]
        page = _HTTPSYS_PAGE.format(title=title, status=status, text=text).encode("ascii")
        self._send(status, b"" if self.command == "HEAD" else page, content_type="text/html; charset=us-ascii")

    def _challenge(self, token: bytes | None = None, inject: Mapping[str, Any] | None = None) -> None:
        front = self.server.front
        headers: list[tuple[str, str]] = []
        scheme = _SCHEME_NAMES[self.ctx_protocol or "negotiate"]
        if token:
            headers.append(("WWW-Authenticate", f"{scheme} {base64.b64encode(token).decode()}"))
        else:
            if "negotiate" in front.auth:
                headers.append(("WWW-Authenticate", "Negotiate"))
            if "ntlm" in front.auth and "negotiate" not in front.auth:
                headers.append(("WWW-Authenticate", "NTLM"))
            if "credssp" in front.auth:
                headers.append(("WWW-Authenticate", "CredSSP"))
            if "basic" in front.auth:
                headers.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        self._send(401, b"", headers, inject=inject)

    def _read_body(self) -> bytes | None:
        """The request body; None (and an HTTP.sys error sent) when its length is unusable."""
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                self._send_httpsys(411)  # WinRM clients always send a length
                self.close_connection = True
                return None
            return b""
        try:
            length = int(raw_length)
        except ValueError:
            length = -1
        if length < 0:
            self._send_httpsys(400)
            self.close_connection = True
            return None
        if length > _MAX_BODY:
            self._send_httpsys(413)
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _not_post(self) -> None:
        body = self._read_body()
        if body is None:
            return
        path = self.path.split("?", 1)[0]
        if path.startswith(CONTROL_PREFIX):
            self._control(body)
        elif path.rstrip("/").lower() == "/wsman":
            # WinRM accepts POST only: 405 with Allow, an empty body (no HTML page).
            self._send(405, b"", [("Allow", "POST")])
        else:
            self._send_httpsys(404)

    do_GET = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _not_post

    def _control(self, body: bytes) -> None:
        """The backend's JSON control API: unauthenticated, and for loopback clients only."""
        front = self.server.front
        answer = None
        if _is_loopback(str(self.client_address[0])):
            answer = front.backend.control(self.command, self.path, body)
        if answer is None:
            self._send_httpsys(404)
            return
        payload = json.dumps(answer.data, sort_keys=False).encode("utf-8")
        self._send(answer.status, payload, content_type="application/json")

    def do_POST(self) -> None:
        front = self.server.front
        body = self._read_body()
        if body is None:
            return
        with front._lock:
            front.stats.requests += 1
            if self.headers.get("Cookie"):
                front.stats.cookies.append(str(self.headers["Cookie"]))
        path = self.path.split("?", 1)[0]
        if path.startswith(CONTROL_PREFIX):
            self._control(body)
            return
        if path.rstrip("/").lower() != "/wsman":
            self._send_httpsys(404)
            return
        # Identify without authentication ([MS-WSMV] 3.1.4.1.34): only with this header.
        if (self.headers.get("WSMANIDENTIFY") or "").lower() == "unauthenticated" and b"Identify" in body:
            self._send(200, identify_reply(authenticated=False).encode(), content_type=SOAP_CONTENT_TYPE)
            return

        if not self._authenticate(body):
            return
        if not body:
            self._send(200, b"")  # the empty POST that finishes authentication
            return

        content_type = self.headers.get("Content-Type") or ""
        encrypted = framing.is_encrypted(content_type)
        if encrypted:
            try:
                plaintext = unseal(self.ctx, body, check_length=False)  # every part of a multi-part body
                self.encryption_protocol = framing.protocol_of(content_type) or framing.SPNEGO_PROTOCOL
            except Exception as exc:  # a garbled or tampered body: whatever the unwrap raised
                log.info("cannot decrypt request: %s", exc)
                self._send(400, b"")
                return
        else:
            if not content_type.lower().startswith("application/soap+xml"):
                self._send(415, b"")  # neither SOAP nor an encrypted multipart
                return
            if self.ctx_protocol != "basic" and not front.allow_unencrypted and front.tls is None:
                # Windows refuses unencrypted traffic by default: HTTP 500 with an empty body.
                self._send(500, b"")
                return
            plaintext = body
        self._dispatch(plaintext, encrypted)

    def _authenticate(self, body: bytes) -> bool:
        front = self.server.front
        if self.authenticated_user is not None and self.ctx_protocol not in ("basic", "certificate"):
            return True
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        scheme_l = scheme.lower()
        if scheme_l == "basic" and "basic" in front.auth:
            if front.tls is None and not front.allow_unencrypted:
                self._challenge()
                return False
            user = front.check_basic(value.strip())
            if user is None:
                with front._lock:
                    front.stats.auth_rejected += 1
                self._challenge()
                return False
            self.authenticated_user, self.ctx_protocol = user, "basic"
            return True
        if header.strip() == CERTIFICATE_AUTH_HEADER and "certificate" in front.auth:
            return self._authenticate_certificate()
        if scheme_l == "credssp" and "credssp" in front.auth and value:
            return self._step_gss(scheme_l, value.strip())
        if scheme_l in ("negotiate", "ntlm") and (scheme_l in front.auth or "negotiate" in front.auth) and value:
            return self._step_gss(scheme_l, value.strip())
        self._challenge()
        return False

    def _authenticate_certificate(self) -> bool:
        """Map a verified TLS client certificate to an account: its UPN's user part must be a user."""
        front = self.server.front
        der = self._raw.getpeercert(binary_form=True) if isinstance(self._raw, ssl.SSLSocket) else None
        if der:
            for identity in client_identities(der):
                user = identity.partition("@")[0].lower()
                if user in front.user_names:
                    self.authenticated_user, self.ctx_protocol = identity, "certificate"
                    return True
        log.info("client certificate missing or not mapped to an account")
        self._challenge()
        return False

    def _step_gss(self, scheme: str, value: str) -> bool:
        front = self.server.front
        try:
            token = base64.b64decode(value, validate=True)
        except ValueError:
            self._challenge()
            return False
        restart = self.ctx is None or self.ctx.complete or scheme != self.ctx_protocol
        if scheme == "credssp":
            protocol = "credssp"
        else:
            protocol = "ntlm" if token.startswith(b"NTLMSSP") else "negotiate"
            restart = restart or token.startswith(b"NTLMSSP\x00\x01")
        if restart:
            self.ctx = spnego.server(protocol=protocol, service="HTTP")
            self.ctx_protocol = scheme
            self.authenticated_user = None
            with front._lock:
                front.stats.auth_handshakes += 1
        try:
            out = self.ctx.step(token, channel_bindings=self._bindings_for(token))
        except Exception as exc:  # pyspnego raises KeyError, ValueError, struct.error... on garbage tokens
            log.info("authentication rejected: %s: %s", type(exc).__name__, exc)
            with front._lock:
                front.stats.auth_rejected += 1
            self.ctx = None
            self._challenge()
            return False
        if not self.ctx.complete:
            if out and scheme != "credssp":
                target = challenge_target_name(out)
                if target:
                    _ACCEPTOR_ENVIRONMENT.alias_target_name(target)
            self._challenge(out)
            return False
        principal = str(self.ctx.client_principal or "unknown")
        if self.ctx.negotiated_protocol == "ntlm" and not front.knows_ntlm_user(principal):
            log.info("authentication rejected: %s is another fake server's user", principal)
            with front._lock:
                front.stats.auth_rejected += 1
            self.ctx = None
            self._challenge()
            return False
        if out:
            self.final_token = f"{_SCHEME_NAMES[scheme]} {base64.b64encode(out).decode()}"
        self.authenticated_user = principal
        return True

    def _bindings_for(self, token: bytes) -> GssChannelBindings | None:
        front = self.server.front
        if self.ctx_protocol == "credssp":
            return None  # CredSSP binds to the TLS channel inside its own handshake
        bindings = front.channel_bindings()
        if bindings is None or front.cbt == "strict":
            return bindings
        # Relaxed (Windows' default CbtHardeningLevel): check bindings only if the client sent some.
        return bindings if _token_has_bindings(token) else None

    def _dispatch(self, plaintext: bytes, encrypted: bool) -> None:
        front = self.server.front
        request = FrontRequest(plaintext, front.machine, self.authenticated_user, encrypted, front.stats)
        reply = front.backend.answer(request)
        status, payload, content_type = apply_injection(reply)
        injection = reply.inject
        if encrypted and self.ctx is not None:
            protocol = self.encryption_protocol or framing.SPNEGO_PROTOCOL
            corrupt = injection.get("corrupt")
            body, content_type = seal_reply(self.ctx, protocol, payload, str(corrupt) if corrupt else None)
            self._send(status, body, content_type=content_type, inject=injection)
        else:
            self._send(status, payload, content_type=content_type, inject=injection)


def _token_has_bindings(token: bytes) -> bool:
    """True when an NTLM AUTHENTICATE (raw or inside SPNEGO) carries non-zero channel bindings.

    Read by hand ([MS-NLMP] 2.2.1.3 AUTHENTICATE_MESSAGE, 2.2.2.7 NTLMv2_CLIENT_CHALLENGE,
    2.2.2.1 AV_PAIR): the NtChallengeResponse field, then its AV pairs after the 28 fixed bytes
    that follow the 16-byte NTProofStr, looking for MsvAvChannelBindings (0x000A).
    """
    start = token.find(b"NTLMSSP\x00\x03\x00\x00\x00")
    if start < 0:
        return False
    message = token[start:]
    if len(message) < 28:
        return False
    length, _max, offset = struct.unpack("<HHI", message[20:28])  # NtChallengeResponseFields
    response = message[offset : offset + length]
    pos = 16 + 28  # NTProofStr, then RespType .. Reserved3 of NTLMv2_CLIENT_CHALLENGE
    while pos + 4 <= len(response):
        av_id, av_len = struct.unpack("<HH", response[pos : pos + 4])
        value = response[pos + 4 : pos + 4 + av_len]
        if av_id == 0x0000:  # MsvAvEOL
            return False
        if av_id == 0x000A:  # MsvAvChannelBindings
            return bool(value) and value != b"\x00" * 16
        pos += 4 + av_len
    return False
