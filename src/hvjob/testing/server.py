"""A fake WinRM server that replays scenario fixtures over real HTTP(S) with real authentication.

It behaves like a Windows WinRM listener where that matters to a client: HTTP/1.1 keep-alive,
``401`` challenges with ``Content-Length: 0`` that never close the connection, NTLM and Negotiate
through pyspnego's acceptor (one context per connection), Basic, message encryption
(``multipart/encrypted``) both ways, HTTPS with channel-binding checks (relaxed or strict), the
unauthenticated Identify (``WSMANIDENTIFY: unauthenticated``), and WS-Man faults for requests that no
fixture matches. Every response is written in one ``sendall`` with TCP_NODELAY (NOTES 5).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import spnego
from spnego.channel_bindings import GssChannelBindings

from hvjob.errors import HvjobError
from hvjob.scenario import (
    Canon,
    Exchange,
    MatchKey,
    RequestPattern,
    Scenario,
    body_matches,
    describe_request,
    load_scenarios,
)
from hvjob.testing.tls import client_identities
from hvjob.transport import nt_hash
from hvjob.transport.sealing import seal, unseal
from hvjob.wire import framing

log = logging.getLogger("hvjob.testing.server")

_RELATES_TO = re.compile(r"(<(?:[A-Za-z0-9_]+:)?RelatesTo>)\s*[^<]*?\s*(</(?:[A-Za-z0-9_]+:)?RelatesTo>)")

NOT_FOUND_FAULT = (
    '<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '
    'xmlns:e="http://schemas.xmlsoap.org/ws/2004/08/eventing" '
    'xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
    "<s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action>"
    "<a:MessageID>uuid:00000000-0000-0000-0000-000000000000</a:MessageID>"
    "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
    "<a:RelatesTo>uuid:00000000-0000-0000-0000-000000000000</a:RelatesTo></s:Header>"
    "<s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:InvalidSelectors</s:Value>"
    '</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot process the '
    "request because the request contained invalid selectors for the resource. </s:Text></s:Reason>"
    '<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" '
    'Code="2150858752" Machine="{machine}"><f:Message>The WS-Management service cannot process the request. '
    "The service cannot find the resource identified by the resource URI and selectors. </f:Message>"
    "</f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"
)

IDENTIFY_RESPONSE = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
    "<s:Header/><s:Body><wsmid:IdentifyResponse>"
    "<wsmid:ProtocolVersion>http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd</wsmid:ProtocolVersion>"
    "<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>"
    "<wsmid:ProductVersion>OS: 0.0.0 SP: 0.0 Stack: 3.0</wsmid:ProductVersion>"
    "{profiles}</wsmid:IdentifyResponse></s:Body></s:Envelope>"
)
_PROFILES = (
    "<wsmid:SecurityProfiles>"
    "<wsmid:SecurityProfileName>http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/spnego-kerberos"
    "</wsmid:SecurityProfileName></wsmid:SecurityProfiles>"
)


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
    invokes: int = 0
    handler_errors: int = 0  # exceptions that escaped a request handler: a bug in the fake
    cookies: list[str] = field(default_factory=list)  # Cookie headers received, in order
    unmatched: list[RequestPattern] = field(default_factory=list)
    served: list[tuple[str | None, Mapping[str, str]]] = field(default_factory=list)


class FakeWinRMServer:
    """Replay ``scenarios`` on ``host:port`` (port 0 picks a free one). Use as a context manager.

    ``auth``: schemes offered, from ``negotiate``, ``ntlm``, ``basic``, ``credssp``, ``certificate``.
    Negotiate accepts NTLM always and Kerberos when ``keytab`` (the ``HTTP/host`` service key, see
    :mod:`hvjob.testing.kdc`) is given and ``KRB5_CONFIG`` points at its realm.
    ``cbt``: ``relaxed`` (a client without channel bindings is accepted) or ``strict``.
    ``idle_timeout``: seconds after which an idle keep-alive connection is closed.
    ``latency_ms``: added before every response, authentication legs included.
    ``fault_plan``: called for each dispatched request without an injection; returns one (or {}).
    """

    def __init__(
        self,
        scenarios: Iterable[Scenario] | Path | str | None = None,
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
        fault_plan: Callable[[RequestPattern], dict[str, Any]] | None = None,
        poll_interval: float = 0.05,
    ) -> None:
        if scenarios is None:
            from hvjob.testing import demo_fixtures_dir

            scenarios = demo_fixtures_dir()
        if isinstance(scenarios, (str, Path)):
            scenarios = load_scenarios(Path(scenarios))
        self.scenarios = list(scenarios)
        self.users_file = Path(users_file) if users_file else None
        self.users = read_users_file(self.users_file) if self.users_file else {}
        self.user_names = {key.rpartition("\\")[2] for key in self.users}  # without their domains
        self.keytab = Path(keytab) if keytab else None
        self.fault_plan = fault_plan
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
        # match key -> groups of (fixture body or None, its exchanges in file order)
        self._table: dict[MatchKey, list[tuple[Canon | None, list[Exchange]]]] = {}
        self._counters: dict[tuple[MatchKey, int], int] = defaultdict(int)
        self._next_injections: list[dict[str, Any]] = []
        self._index()
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.fake = self
        self._thread: threading.Thread | None = None
        self._cert_hash: bytes | None = None

    # --- set-up ------------------------------------------------------------------------------

    def _index(self) -> None:
        owners: dict[tuple[MatchKey, Canon | None], str] = {}
        for scenario in self.scenarios:
            for exchange in scenario.exchanges:
                key, body = exchange.request.key(), exchange.request.body_canon()
                owner = owners.setdefault((key, body), scenario.name)
                if owner != scenario.name:
                    raise HvjobError(f"fixtures {owner} and {scenario.name} both answer the same request")
                groups = self._table.setdefault(key, [])
                for group_body, exchanges in groups:
                    if group_body == body:
                        exchanges.append(exchange)
                        break
                else:
                    groups.append((body, [exchange]))
                # Specific bodies are tried before body-less catch-alls.
                groups.sort(key=lambda group: group[0] is None)

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

    def start(self) -> FakeWinRMServer:
        _ACCEPTOR_ENVIRONMENT.add(self)
        if self.tls is not None:
            self._cert_hash = _server_cert_hash(self.tls)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": self.poll_interval},
            name=f"fake-winrm-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        _ACCEPTOR_ENVIRONMENT.remove(self)

    def __enter__(self) -> FakeWinRMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Start every fixture sequence from its first response again."""
        with self._lock:
            self._counters.clear()
            self.stats = ServerStats()

    def inject_next(self, **injection: Any) -> None:
        """Apply ``injection`` (see docs/fixtures.md) to the next request that reaches dispatch."""
        with self._lock:
            self._next_injections.append(injection)

    def close_idle_connections(self) -> None:
        """Close every open keep-alive connection now, as Windows does after its idle timeout."""
        self._httpd.close_all()

    @property
    def open_connections(self) -> int:
        """Client connections not yet closed: tests wait on it instead of sleeping."""
        return self._httpd.open_count()

    # --- request handling --------------------------------------------------------------------

    def match(self, pattern: RequestPattern) -> Exchange | None:
        key = pattern.key()
        actual = pattern.body_canon()
        with self._lock:
            for number, (body, sequence) in enumerate(self._table.get(key, [])):
                if body is not None and (actual is None or not body_matches(body, actual)):
                    continue
                index = self._counters[(key, number)]
                self._counters[(key, number)] = index + 1
                return sequence[min(index, len(sequence) - 1)]
            self.stats.unmatched.append(pattern)
            return None

    def pop_injection(self) -> dict[str, Any]:
        with self._lock:
            return self._next_injections.pop(0) if self._next_injections else {}

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
        if expected is not None and _consteq(expected, password):
            return user
        return None

    def knows_ntlm_user(self, principal: str) -> bool:
        """The shared users file holds every live server's users; each server accepts only its own."""
        name = principal.lower()
        return name in self.users or name.rpartition("\\")[2] in self.users


class _AcceptorEnvironment:
    """The environment pyspnego's acceptors read: ``NTLM_USER_FILE`` and ``KRB5_KTNAME``.

    Changing ``os.environ`` per handshake races with every thread that reads the environment
    (requests does, for proxies, in a client running in the same process: a test's, or a user's),
    so all fake servers of a process share one merged users file and one keytab. The variables
    are set when the first server starts and restored when the last one stops.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[int, FakeWinRMServer] = {}
        self._entries: dict[int, list[str]] = {}  # each server's users, read and hashed once
        self._written: list[str] | None = None
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._saved: dict[str, str | None] = {}

    def add(self, server: FakeWinRMServer) -> None:
        entries = []
        if server.users_file is not None:
            entries = [_hashed_entry(line) for line in server.users_file.read_text(encoding="utf-8").splitlines()]
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

    def remove(self, server: FakeWinRMServer) -> None:
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

    def _write(self, keytabs: set[Path]) -> None:
        """Rewrite the merged users file when its lines change (servers of a fleet share theirs)."""
        assert self._directory is not None
        lines = list(dict.fromkeys(line for entries in self._entries.values() for line in entries))
        if lines != self._written:
            target = Path(self._directory.name) / "users.txt"
            staging = target.with_suffix(".new")
            staging.write_text("\n".join(lines) + "\n", encoding="utf-8")
            staging.chmod(0o600)
            staging.replace(target)  # atomic: a handshake never reads half a file
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


_ACCEPTOR_ENVIRONMENT = _AcceptorEnvironment()


def _consteq(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def _server_cert_hash(context: ssl.SSLContext) -> bytes | None:
    cert_path = getattr(context, "hvjob_cert_path", None)
    if not cert_path:
        return None
    pem = Path(cert_path).read_text()
    der = ssl.PEM_cert_to_DER_cert(pem[: pem.index("-----END CERTIFICATE-----") + 25])
    return hashlib.sha256(der).digest()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512
    fake: FakeWinRMServer

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
        with self.fake._lock:
            self.fake.stats.handler_errors += 1
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
        fake = self.server.fake
        raw: socket.socket = self.request
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._raw = raw
        self._tls_failed = False
        if fake.tls is not None:
            raw.settimeout(10)
            try:
                tls_socket = fake.tls.wrap_socket(raw, server_side=True)  # detaches ``raw``
            except (OSError, ssl.SSLError) as exc:
                log.debug("TLS handshake failed: %s", exc)
                self._tls_failed = True
            else:
                tls_socket.settimeout(None)
                self.request = self._raw = tls_socket
        self.server.track(self._raw, True)
        self.timeout = fake.idle_timeout  # type: ignore[misc]  # per-connection idle close
        self.ctx: Any = None
        self.ctx_protocol: str | None = None
        self.authenticated_user: str | None = None
        self.final_token: str | None = None
        self.encryption_protocol: str | None = None
        with fake._lock:
            fake.stats.connections += 1
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
        fake = self.server.fake
        inject = inject or {}
        delay = fake.latency_ms + float(inject.get("latency_ms", 0))
        if delay:
            time.sleep(delay / 1000.0)
        if inject.get("close") == "before_response":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._raw.shutdown(socket.SHUT_RDWR)
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

    def _challenge(self, token: bytes | None = None, inject: Mapping[str, Any] | None = None) -> None:
        fake = self.server.fake
        headers: list[tuple[str, str]] = []
        scheme = _SCHEME_NAMES[self.ctx_protocol or "negotiate"]
        if token:
            headers.append(("WWW-Authenticate", f"{scheme} {base64.b64encode(token).decode()}"))
        else:
            if "negotiate" in fake.auth:
                headers.append(("WWW-Authenticate", "Negotiate"))
            if "ntlm" in fake.auth and "negotiate" not in fake.auth:
                headers.append(("WWW-Authenticate", "NTLM"))
            if "credssp" in fake.auth:
                headers.append(("WWW-Authenticate", "CredSSP"))
            if "basic" in fake.auth:
                headers.append(("WWW-Authenticate", 'Basic realm="WSMAN"'))
        self._send(401, b"", headers, inject=inject)

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        if length > 16 * 1024 * 1024:
            self._send(413)
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        with fake._lock:
            fake.stats.requests += 1
            if self.headers.get("Cookie"):
                fake.stats.cookies.append(str(self.headers["Cookie"]))

        if self.path.rstrip("/").lower() != "/wsman":
            self._send(404)
            return
        # Identify without authentication ([MS-WSMV] 3.1.4.1.34): only with this header.
        if (self.headers.get("WSMANIDENTIFY") or "").lower() == "unauthenticated" and b"Identify" in body:
            self._reply_identify_unauthenticated()
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
                plaintext = unseal(self.ctx, body, check_length=False)
                self.encryption_protocol = framing.protocol_of(content_type) or framing.SPNEGO_PROTOCOL
            except Exception as exc:  # a garbled or tampered body: whatever the unwrap raised
                log.info("cannot decrypt request: %s", exc)
                self._send(400, b"")
                return
        else:
            if self.ctx is not None and not fake.allow_unencrypted and fake.tls is None:
                self._send(400, b"")  # Windows refuses unencrypted traffic by default
                return
            plaintext = body
        self._dispatch(plaintext, encrypted)

    def _authenticate(self, body: bytes) -> bool:
        fake = self.server.fake
        if self.authenticated_user is not None and self.ctx_protocol not in ("basic", "certificate"):
            return True
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        scheme_l = scheme.lower()
        if scheme_l == "basic" and "basic" in fake.auth:
            if fake.tls is None and not fake.allow_unencrypted:
                self._challenge()
                return False
            user = fake.check_basic(value.strip())
            if user is None:
                self._challenge()
                return False
            self.authenticated_user, self.ctx_protocol = user, "basic"
            return True
        if header.strip() == CERTIFICATE_AUTH_HEADER and "certificate" in fake.auth:
            return self._authenticate_certificate()
        if scheme_l == "credssp" and "credssp" in fake.auth and value:
            return self._step_gss(scheme_l, value.strip())
        if scheme_l in ("negotiate", "ntlm") and (scheme_l in fake.auth or "negotiate" in fake.auth) and value:
            return self._step_gss(scheme_l, value.strip())
        self._challenge()
        return False

    def _authenticate_certificate(self) -> bool:
        """Map a verified TLS client certificate to an account: its UPN's user part must be a user."""
        fake = self.server.fake
        der = self._raw.getpeercert(binary_form=True) if isinstance(self._raw, ssl.SSLSocket) else None
        if der:
            for identity in client_identities(der):
                user = identity.partition("@")[0].lower()
                if user in fake.user_names:
                    self.authenticated_user, self.ctx_protocol = identity, "certificate"
                    return True
        log.info("client certificate missing or not mapped to an account")
        self._challenge()
        return False

    def _step_gss(self, scheme: str, value: str) -> bool:
        fake = self.server.fake
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
            with fake._lock:
                fake.stats.auth_handshakes += 1
        try:
            out = self.ctx.step(token, channel_bindings=self._bindings_for(token))
        except Exception as exc:  # pyspnego raises KeyError, ValueError, struct.error... on garbage tokens
            log.info("authentication rejected: %s: %s", type(exc).__name__, exc)
            self.ctx = None
            self._challenge()
            return False
        if not self.ctx.complete:
            self._challenge(out)
            return False
        principal = str(self.ctx.client_principal or "unknown")
        if self.ctx.negotiated_protocol == "ntlm" and not fake.knows_ntlm_user(principal):
            log.info("authentication rejected: %s is another fake server's user", principal)
            self.ctx = None
            self._challenge()
            return False
        if out:
            self.final_token = f"{_SCHEME_NAMES[scheme]} {base64.b64encode(out).decode()}"
        self.authenticated_user = principal
        return True

    def _bindings_for(self, token: bytes) -> GssChannelBindings | None:
        fake = self.server.fake
        if self.ctx_protocol == "credssp":
            return None  # CredSSP binds to the TLS channel inside its own handshake
        bindings = fake.channel_bindings()
        if bindings is None or fake.cbt == "strict":
            return bindings
        # Relaxed (Windows' default CbtHardeningLevel): check bindings only if the client sent some.
        return bindings if _token_has_bindings(token) else None

    def _reply_identify_unauthenticated(self) -> None:
        body = IDENTIFY_RESPONSE.format(profiles="").encode()  # no security profiles before authentication
        self._send(200, body, content_type="application/soap+xml;charset=UTF-8")

    def _dispatch(self, plaintext: bytes, encrypted: bool) -> None:
        fake = self.server.fake
        try:
            pattern = describe_request(plaintext)
        except HvjobError:
            self._send(400, b"")
            return
        injection = dict(fake.pop_injection())
        if not injection and fake.fault_plan is not None:
            injection = fake.fault_plan(pattern)
        exchange = None if pattern.action == "Identify" else fake.match(pattern)
        message_id = _message_id(plaintext)
        if pattern.action == "Identify":  # authenticated Identify: answered like any reply (encrypted too)
            status, text = 200, IDENTIFY_RESPONSE.format(profiles=_PROFILES)
            content_type = "application/soap+xml;charset=UTF-8"
        elif exchange is None:
            status, text = 500, NOT_FOUND_FAULT.format(machine=fake.machine)
            content_type = "application/soap+xml;charset=UTF-8"
        else:
            status, text, content_type = exchange.status, exchange.body, exchange.content_type
            injection = {**exchange.inject, **injection}
            with fake._lock:
                fake.stats.served.append((pattern.action, dict(pattern.selectors)))
                if pattern.action and not pattern.action.startswith("http://schemas.xmlsoap.org/"):
                    fake.stats.invokes += 1
        if isinstance(injection.get("reply"), str):  # another response, e.g. a captured fault, answering this one
            text = str(injection["reply"])
            status = int(injection.get("status", 500 if ":Fault>" in text else 200))
        relates = injection.get("relates_to", message_id)
        if relates is not None and relates != "omit":
            text = _RELATES_TO.sub(lambda m: f"{m.group(1)}{relates}{m.group(2)}", text, count=1)
        if "action" in injection:
            text = re.sub(r"(<(?:\w+:)?Action>)[^<]*(</(?:\w+:)?Action>)", rf"\g<1>{injection['action']}\g<2>", text)
        payload = text.encode("utf-8")
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
        content_type = str(injection.get("content_type", content_type))
        if encrypted and self.ctx is not None:
            protocol = self.encryption_protocol or framing.SPNEGO_PROTOCOL
            sealed_type, body = seal_reply(self.ctx, protocol, payload, corrupt=injection.get("corrupt"))
            self._send(status, body, content_type=sealed_type, inject=injection)
        else:
            self._send(status, payload, content_type=content_type, inject=injection)


#: What a WinRM client sends in ``Authorization`` to authenticate with its TLS client certificate.
CERTIFICATE_AUTH_HEADER = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"

_SCHEME_NAMES = {"negotiate": "Negotiate", "ntlm": "NTLM", "credssp": "CredSSP", "basic": "Basic"}


def _message_id(plaintext: bytes) -> str | None:
    match = re.search(rb"<(?:[\w]+:)?MessageID>\s*([^<\s]+)\s*<", plaintext)
    return match.group(1).decode("utf-8", "replace") if match else None


def seal_reply(context: Any, protocol: str, payload: bytes, *, corrupt: str | None = None) -> tuple[str, bytes]:
    """A reply sealed as Windows sends it: ``(Content-Type, body)``. CredSSP replies over 16 KiB go
    as ``multipart/x-multi-encrypted``, one part per 16 KiB. ``corrupt`` (``signature`` or
    ``payload``) flips a byte of the first part's signature or the last part's sealed payload."""
    content_type, body = seal(context, protocol, payload)
    if corrupt not in ("signature", "payload"):
        return content_type, body
    parts = framing.unframe_parts(body)
    first, last = parts[0], parts[-1]
    if corrupt == "signature" and first.header:
        parts[0] = replace(first, header=bytes([first.header[0] ^ 0xFF]) + first.header[1:])
    elif corrupt == "payload" and last.sealed:
        parts[-1] = replace(last, sealed=last.sealed[:-1] + bytes([last.sealed[-1] ^ 0xFF]))
    return content_type, framing.frame_parts(parts)


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
