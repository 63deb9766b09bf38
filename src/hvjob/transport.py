"""HTTP transport: one authenticated, keep-alive WS-Man session per host.

Authentication is set up by pywinrm's ``Transport.build_session`` (NTLM through requests-ntlm,
Kerberos, CredSSP, Basic, client certificates), and the seal/unseal of message encryption comes
from ``winrm.encryption.Encryption``. hvjob owns the HTTP exchange on that requests session:
separate connect and read timeouts, a streamed and capped body, knowledge of whether a request was
sent, the structural ``multipart/encrypted`` framing (:mod:`hvjob.wire.framing`), recovery of a
keep-alive connection that the server closed, and the translation of every foreign exception
(requests, urllib3, pywinrm, pyspnego, ssl) into :mod:`hvjob.errors` in one place: :func:`translate`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import socket
import ssl
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
import requests.auth
import requests.cookies
import urllib3.exceptions
import winrm.exceptions
from spnego.exceptions import SpnegoError

from hvjob.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    HvjobError,
    NameResolutionFailed,
    OutcomeUnknown,
    ProtocolError,
    RequestTimedOut,
    ResponseTooLarge,
    TLSFailed,
    UsageError,
)
from hvjob.wire import framing
from hvjob.wire.build import HeaderOptions, WsmanRequest, build_identify
from hvjob.wire.parse import IdentifyResult, Result, parse_response
from hvjob.wire.xmlsafe import DEFAULT_MAX_BYTES

log = logging.getLogger("hvjob.transport")
wire_log = logging.getLogger("hvjob.wire.traffic")

AuthMethod = Literal["ntlm", "kerberos", "credssp", "basic", "certificate"]
Encryption = Literal["auto", "always", "never"]
AUTH_METHODS: tuple[str, ...] = ("ntlm", "kerberos", "credssp", "basic", "certificate")
_ENCRYPTING = frozenset({"ntlm", "kerberos", "credssp"})


@dataclass(frozen=True)
class ConnectionOptions:
    """How to reach and authenticate to a WinRM endpoint. Secure by default.

    HTTPS with certificate validation is the default; plain HTTP is allowed only with message
    encryption unless ``allow_unencrypted`` is set, and skipping certificate validation needs
    ``insecure``. Both log a warning.
    """

    transport: AuthMethod = "ntlm"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    scheme: Literal["https", "http"] = "https"
    port: int | None = None
    path: str = "/wsman"
    ca_trust_path: str | None = None
    insecure: bool = False
    message_encryption: Encryption = "auto"
    allow_unencrypted: bool = False
    cert_pem: str | None = None
    cert_key_pem: str | None = field(default=None, repr=False)
    spn_service: str | None = None
    spn_hostname: str | None = None
    connect_timeout: float = 10.0
    operation_timeout: float = 20.0
    read_timeout_margin: float = 10.0
    proxy: str | None = None
    max_response_bytes: int = DEFAULT_MAX_BYTES
    send_cbt: bool = True

    @property
    def read_timeout(self) -> float:
        """The HTTP read timeout: OperationTimeout plus a margin, so the server answers first."""
        return self.operation_timeout + self.read_timeout_margin

    def with_password(self, password: str | None) -> ConnectionOptions:
        return replace(self, password=password)


def endpoint_url(host: str, options: ConnectionOptions) -> str:
    """``name``, ``name:port`` or a full ``http(s)://name:port/wsman`` URL to an endpoint URL."""
    if "://" in host:
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"invalid endpoint URL {host!r}")
        return host
    name, port = host, options.port
    match = re.fullmatch(r"\[?([^\[\]]+?)\]?(?::(\d+))?", host)
    if match is None or not match.group(1):
        raise UsageError(f"invalid host {host!r}")
    if match.group(2) and (":" not in match.group(1) or host.startswith("[")):
        name, port = match.group(1), int(match.group(2))
    elif host.startswith("["):
        name = match.group(1)
    if port is None:
        port = 5986 if options.scheme == "https" else 5985
    if not 0 < port < 65536:
        raise UsageError(f"invalid port {port}")
    shown = f"[{name}]" if ":" in name else name
    return f"{options.scheme}://{shown}:{port}{options.path}"


def _seals_messages(url: str, options: ConnectionOptions) -> bool:
    """Message encryption: asked for, or ``auto`` over plain HTTP (over HTTPS, TLS protects it)."""
    if options.transport not in _ENCRYPTING or options.message_encryption == "never":
        return False
    return options.message_encryption == "always" or urlsplit(url).scheme == "http"


def check_security(url: str, options: ConnectionOptions) -> None:
    """Refuse weak settings unless asked for by name; warn when they are."""
    scheme = urlsplit(url).scheme
    if scheme == "http":
        encrypting = _seals_messages(url, options)
        if not encrypting and not options.allow_unencrypted:
            raise UsageError(
                f"{options.transport} over plain HTTP would send unencrypted traffic"
                + (" and a Basic password in clear" if options.transport == "basic" else "")
                + "; use HTTPS, message encryption, or ask for allow_unencrypted"
            )
        if not encrypting:
            log.warning("sending unencrypted WS-Man traffic to %s (allow_unencrypted)", url)
    if scheme == "https" and options.insecure:
        log.warning("not validating the TLS certificate of %s (insecure)", url)
    if options.transport == "certificate" and scheme != "https":
        raise UsageError("certificate authentication needs HTTPS")
    if options.transport == "certificate" and not (options.cert_pem and options.cert_key_pem):
        raise UsageError("certificate authentication needs cert_pem and cert_key_pem")
    if options.transport not in AUTH_METHODS:
        raise UsageError(f"unknown transport {options.transport!r}")


# --- exception translation: the one place --------------------------------------------------------

_NAME_ERRORS = (
    "Name or service not known",
    "nodename nor servname",
    "Temporary failure in name resolution",
    "No address associated",
    "getaddrinfo failed",
    "NameResolutionError",
    "Failed to resolve",
)


def translate(exc: BaseException, *, host: str, request: WsmanRequest | None, sent: bool) -> HvjobError:
    """Map a foreign exception to hvjob's tree. ``sent``: the request may have reached the server."""
    if isinstance(exc, HvjobError):
        return exc
    payload = request.payload if request is not None else None
    invoke = request is not None and not request.safe_to_resend
    text = _describe(exc)

    def made(cls: type[HvjobError], message: str, **kw: Any) -> HvjobError:
        return cls(message, host=host, request_xml=payload, **kw)

    if isinstance(exc, (winrm.exceptions.InvalidCredentialsError, winrm.exceptions.AuthenticationError)):
        return made(AuthenticationFailed, f"authentication rejected: {text}")
    if isinstance(exc, SpnegoError):
        return made(AuthenticationFailed, f"authentication failed: {text}")
    kerberos_errors, credssp_errors = _optional_auth_exceptions()
    if isinstance(exc, kerberos_errors):
        hint = " (check the ticket cache and the SPN: spn_service, spn_hostname)"
        return made(AuthenticationFailed, f"Kerberos authentication failed: {text}{hint}")
    if isinstance(exc, credssp_errors):
        return made(AuthenticationFailed, f"CredSSP authentication failed: {text}")
    if isinstance(exc, PermissionError):  # requests-ntlm: no NTLM challenge from the server
        return made(AuthenticationFailed, f"authentication failed: {text}")
    if isinstance(exc, (requests.exceptions.SSLError, ssl.SSLError, urllib3.exceptions.SSLError)):
        return made(TLSFailed, f"TLS failed: {text}")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return made(RequestTimedOut, f"connect timed out: {text}", connect=True)
    if isinstance(exc, (requests.exceptions.ReadTimeout, socket.timeout, urllib3.exceptions.ReadTimeoutError)):
        if invoke and sent:
            return made(
                OutcomeUnknown,
                f"no answer to {request.method if request else 'the request'} "
                f"within the read timeout; it may have run: {text}",
            )
        return made(RequestTimedOut, f"read timed out: {text}")
    if isinstance(exc, requests.exceptions.ProxyError):
        return made(ConnectionFailed, f"proxy failed: {text}")
    if isinstance(
        exc,
        (
            requests.exceptions.ConnectionError,
            ConnectionError,
            urllib3.exceptions.HTTPError,
            requests.exceptions.ChunkedEncodingError,
            OSError,
        ),
    ):
        if any(marker in text for marker in _NAME_ERRORS):
            return made(NameResolutionFailed, f"cannot resolve host: {text}")
        if sent and invoke:
            return made(
                OutcomeUnknown,
                f"connection lost after {request.method if request else 'the request'} "
                f"was sent; it may have run: {text}",
            )
        return made(ConnectionFailed, f"connection failed: {text}")
    if isinstance(exc, winrm.exceptions.WinRMTransportError):
        return made(ProtocolError, f"unexpected HTTP reply: {text}")
    if isinstance(exc, (winrm.exceptions.WinRMError, requests.exceptions.RequestException)):
        return made(ConnectionFailed if not sent else ProtocolError, text)
    if isinstance(exc, (ValueError, KeyError, IndexError, TypeError, AttributeError)):
        # pywinrm's encryption code raises these on a corrupted or unexpected encrypted reply.
        return made(ProtocolError, f"unusable reply: {text}")
    return made(ProtocolError, f"unexpected failure: {text}")


@functools.cache
def _optional_auth_exceptions() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """Exception classes of the optional Kerberos and CredSSP libraries that are installed."""
    kerberos: list[type[BaseException]] = []
    credssp: list[type[BaseException]] = []
    with contextlib.suppress(ImportError):
        import kerberos as pykerberos  # pykerberos, used by pywinrm's vendored requests-kerberos

        kerberos.append(pykerberos.KrbError)
    with contextlib.suppress(ImportError):
        from gssapi.raw.misc import GSSError  # pyspnego's Kerberos, and the fake server's acceptor

        kerberos.append(GSSError)
    with contextlib.suppress(ImportError):
        from winrm.vendor.requests_kerberos import exceptions as requests_kerberos

        kerberos += [requests_kerberos.MutualAuthenticationError, requests_kerberos.KerberosExchangeError]
    with contextlib.suppress(ImportError):
        import requests_credssp.exceptions as credssp_exceptions

        credssp += [
            credssp_exceptions.AuthenticationException,
            credssp_exceptions.InvalidConfigurationException,
            credssp_exceptions.NTStatusException,
        ]
    return tuple(kerberos), tuple(credssp)


def _describe(exc: BaseException) -> str:
    """A one-line description of a foreign exception, following its causes; credentials never in it."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < 4:
        seen.add(id(current))
        try:
            text = str(current).strip() or type(current).__name__
        except Exception:  # some foreign exceptions cannot even format themselves
            text = type(current).__name__
        if text not in parts:
            parts.append(text)
        current = current.__cause__ or current.__context__
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
    return "; ".join(parts)[:500]


# --- the session ---------------------------------------------------------------------------------


def nt_hash(password: str) -> str | None:
    """The NTLM NT hash of ``password`` in hex, from pyspnego; None if that private helper moves.

    As secret as the password and treated the same way: never logged, never in a repr or an error.
    """
    try:
        from spnego._ntlm_raw.crypto import ntowfv1
    except ImportError:
        return None
    return str(ntowfv1(password).hex())


@functools.lru_cache(maxsize=8)
def _ntlm_secret(password: str | None) -> str | None:
    """The password as pyspnego's ``LM:NT`` hash form, computed once per password and process.

    pyspnego derives both hashes for every new NTLM context, the LM one with pure-Python DES
    although NTLMv2 never uses it; over a fan-out that was a tenth of the client's CPU. The LM
    half is left empty (zeros), as Windows stores it since Vista.
    """
    if password is None:
        return None
    nt = nt_hash(password)
    return password if nt is None else "0" * 32 + ":" + nt


def _settle_environment(session: requests.Session) -> None:
    """Stop requests from reading ``os.environ`` for proxies on every send (that walk was 15% of a
    KillJob's CPU). pywinrm's ``build_session`` has already merged the environment's proxies for
    this endpoint into ``session.proxies``, so nothing is lost.

    Called before the first request, so the authentication legs skip the walk too.
    """
    session.trust_env = False


def _encryption_available(session: requests.Session, transport: str) -> bool:
    """pywinrm's own test of whether the auth it set up can seal messages."""
    auth = session.auth
    if transport == "ntlm":
        return hasattr(auth, "session_security")
    if transport == "kerberos":
        return bool(getattr(auth, "winrm_encryption_available", False))
    return transport == "credssp"


class _PassThroughAuth(requests.auth.AuthBase):
    """After the handshake: keep the connection, but let a 401 surface instead of re-negotiating.

    requests-ntlm would answer a 401 on a reconnected socket by resending the body sealed with the
    old context. hvjob instead rebuilds the whole session: a 401 proves the server did not act.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Connection"] = "Keep-Alive"
        return r

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


Recorder = Callable[[WsmanRequest, int, bytes], None]


class WsmanSession:
    """One host: an authenticated keep-alive connection, reused for every request.

    Thread-safe by serialisation: requests to one host go one at a time, as on a single
    authenticated connection they must.
    """

    def __init__(
        self,
        host: str,
        options: ConnectionOptions,
        *,
        recorder: Recorder | None = None,
        trace: bool = False,
    ) -> None:
        self.url = endpoint_url(host, options)
        self._hostname = urlsplit(self.url).hostname
        check_security(self.url, options)
        self.host = host
        self.options = options
        self.header_options = HeaderOptions(to=self.url, operation_timeout_s=options.operation_timeout)
        self.recorder = recorder
        self.trace = trace or wire_log.isEnabledFor(logging.DEBUG)
        self._lock = threading.RLock()
        self._transport: Any = None
        self._session: requests.Session | None = None
        self._encryption: Any = None
        self.reconnects = 0

    def __repr__(self) -> str:
        return f"WsmanSession(url={self.url!r}, transport={self.options.transport!r}, user={self.options.username!r})"

    def __enter__(self) -> WsmanSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
            self._session = self._transport = self._encryption = None

    # --- building --------------------------------------------------------------------------

    def _pywinrm_transport(self) -> Any:
        import winrm.transport

        opts = self.options
        auth_method = "certificate" if opts.transport == "certificate" else opts.transport
        # pywinrm's hints say str and int; it passes both straight to requests, which takes None
        # (default CA bundle) and a (connect, read) tuple.
        ca_trust_path: Any = opts.ca_trust_path
        timeouts: Any = (opts.connect_timeout, opts.read_timeout)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return winrm.transport.Transport(
                endpoint=self.url,
                username=opts.username,
                password=_ntlm_secret(opts.password) if opts.transport == "ntlm" else opts.password,
                auth_method=auth_method,
                server_cert_validation="ignore" if opts.insecure else "validate",
                ca_trust_path=ca_trust_path,
                cert_pem=opts.cert_pem,
                cert_key_pem=opts.cert_key_pem,
                service=opts.spn_service or "HTTP",
                kerberos_hostname_override=opts.spn_hostname,
                message_encryption="never",  # set up by _connect, once the session is settled
                read_timeout_sec=timeouts,
                proxy=opts.proxy if opts.proxy is not None else "legacy_requests",
                send_cbt=opts.send_cbt,
            )

    def _connect(self) -> requests.Session:
        """Authenticate (and set up encryption) on a fresh connection.

        pywinrm builds the session without encryption (no network), hvjob settles it, and then
        pywinrm's ``setup_encryption`` runs the authentication legs on the settled session.
        """
        if self._session is not None:
            return self._session
        transport = self._pywinrm_transport()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                session: requests.Session = transport.build_session()
                if self.options.ca_trust_path and not self.options.insecure:
                    session.verify = self.options.ca_trust_path  # never REQUESTS_CA_BUNDLE over an explicit path
                _settle_environment(session)
                if _seals_messages(self.url, self.options):
                    if not _encryption_available(session, self.options.transport):
                        raise winrm.exceptions.WinRMError(
                            f"message encryption is required but {self.options.transport} cannot provide it here"
                        )
                    transport.setup_encryption(session)
        except Exception as exc:
            transport.close_session()
            raise translate(exc, host=self.host, request=None, sent=False) from exc
        if transport.encryption is not None:
            session.auth = _PassThroughAuth(session.auth)
        self._transport, self._session, self._encryption = transport, session, transport.encryption
        return session

    # --- sending ---------------------------------------------------------------------------

    def send(self, request: WsmanRequest) -> Result:
        """Send ``request`` and return its checked, decoded reply; raise an hvjob error otherwise."""
        with self._lock:
            status, body, content_type = self._exchange(request)
        if self.recorder is not None:
            self.recorder(request, status, body)
        charset = _charset(content_type)
        if status not in (200, 400, 500) or not body:
            if status == 401:
                raise AuthenticationFailed(
                    "credentials rejected (HTTP 401)", host=self.host, request_xml=request.payload
                )
            raise ProtocolError(
                f"unexpected HTTP {status} with {len(body)} bytes",
                host=self.host,
                request_xml=request.payload,
                response_xml=body[:65536],
            )
        return parse_response(
            request,
            body,
            host=self.host,
            http_status=status,
            max_bytes=self.options.max_response_bytes,
            encoding=charset,
        )

    def identify(self, *, anonymous: bool = False) -> IdentifyResult:
        """WS-Man Identify. ``anonymous`` sends ``WSMANIDENTIFY: unauthenticated`` on a connection of its
        own, without credentials, as Windows allows ([MS-WSMV] 3.1.4.1.34)."""
        request = build_identify()
        reply = self._send_unauthenticated(request) if anonymous else self.send(request)
        if not isinstance(reply, IdentifyResult):
            raise ProtocolError("Identify reply is not an IdentifyResponse", host=self.host)
        return reply

    def _send_unauthenticated(self, request: WsmanRequest) -> Result:
        opts = self.options
        with requests.Session() as plain:
            plain.trust_env = opts.proxy is None
            if opts.proxy is not None:
                plain.proxies = {"http": opts.proxy, "https": opts.proxy}
            verify: bool | str = False if opts.insecure else (opts.ca_trust_path or True)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                    response = plain.post(
                        self.url,
                        data=request.payload,
                        verify=verify,
                        stream=True,
                        timeout=(opts.connect_timeout, opts.read_timeout),
                        headers={
                            "WSMANIDENTIFY": "unauthenticated",
                            "Content-Type": "application/soap+xml;charset=UTF-8",
                        },
                    )
                body = self._read_capped(response)
            except HvjobError:
                raise
            except Exception as exc:
                raise translate(exc, host=self.host, request=request, sent=_maybe_sent(exc)) from exc
        return parse_response(
            request,
            body,
            host=self.host,
            http_status=response.status_code,
            max_bytes=opts.max_response_bytes,
            encoding=_charset(response.headers.get("Content-Type", "")),
        )

    def _exchange(self, request: WsmanRequest) -> tuple[int, bytes, str]:
        fresh = self._session is None
        try:
            return self._exchange_once(request)
        except _Retryable as retry:
            # The server closed the connection we had (idle keep-alive), lost our auth context, or cut
            # a response short. A connection that never carried a request is a dead host: no retry.
            if fresh and retry.provably_unsent:
                raise retry.error from retry.cause
            if not (retry.provably_unsent or request.safe_to_resend):
                raise retry.error from retry.cause
            log.info("%s: reconnecting and re-authenticating (%s)", self.host, retry.error.message)
            self.close()
            self.reconnects += 1
            try:
                return self._exchange_once(request)
            except _Retryable as again:
                raise again.error from again.cause

    def _exchange_once(self, request: WsmanRequest) -> tuple[int, bytes, str]:
        session = self._connect()
        payload = request.payload
        if self.trace:
            wire_log.debug("%s >>> %s", self.host, payload.decode("utf-8", "replace"))
        if self._encryption is not None:
            prepared = self._prepare_encrypted(session, payload)
        else:
            prepared = session.prepare_request(
                requests.Request(
                    "POST", self.url, data=payload, headers={"Content-Type": "application/soap+xml;charset=UTF-8"}
                )
            )
        sent = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)  # logged once above
                timeout = (self.options.connect_timeout, self.options.read_timeout)
                if self._encryption is not None:
                    response = _send_sealed(session, prepared, timeout)
                else:
                    response = session.send(prepared, stream=True, timeout=timeout)
            sent = True
            body = self._read_capped(response)
        except Exception as exc:
            sent = sent or _maybe_sent(exc)
            error = translate(exc, host=self.host, request=request, sent=sent)
            if isinstance(error, (ConnectionFailed, OutcomeUnknown)) and not isinstance(error, NameResolutionFailed):
                raise _Retryable(error, exc, provably_unsent=not sent) from exc
            raise error from exc
        status = response.status_code
        content_type = response.headers.get("Content-Type", "")
        if status == 401 and self._encryption is not None:
            # Our authenticated connection is gone; a 401 proves the request was not processed.
            raise _Retryable(
                AuthenticationFailed("server asked to re-authenticate", host=self.host), None, provably_unsent=True
            )
        if framing.is_encrypted(content_type):
            body = self._decrypt(body, content_type, request)
        elif self._encryption is not None and body and status in (200, 500):
            raise ProtocolError(
                "server answered an encrypted request in clear",
                host=self.host,
                request_xml=payload,
                response_xml=body[:65536],
            )
        if self.trace:
            wire_log.debug("%s <<< HTTP %s %s", self.host, status, body.decode("utf-8", "replace"))
        return status, body, content_type

    def _prepare_encrypted(self, session: requests.Session, payload: bytes) -> requests.PreparedRequest:
        """Seal ``payload`` with pywinrm's encryption and prepare the POST without the full
        ``Session.prepare_request`` merge, which cost a tenth of a call; the session's headers,
        cookies, hooks and keep-alive auth are still applied."""
        encryption = self._encryption
        assert encryption is not None
        if encryption.protocol == "credssp" and len(payload) > encryption.SIXTEN_KB:
            sealed: requests.PreparedRequest = encryption.prepare_encrypted_request(session, self.url, payload)
            return sealed  # multi-part sealing
        body = encryption._encrypt_message(payload, self._hostname) + encryption.MIME_BOUNDARY + b"--\r\n"
        prepared = requests.PreparedRequest()
        prepared.prepare(
            method="POST",
            url=self.url,
            headers=dict(session.headers),
            data=body,
            cookies=session.cookies,
            hooks=session.hooks,
            auth=session.auth,
        )
        prepared.headers["Content-Type"] = framing.content_type(encryption.protocol_string.decode("ascii"))
        return prepared

    def _read_capped(self, response: requests.Response) -> bytes:
        limit = self.options.max_response_bytes
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > limit:
            response.close()
            raise ResponseTooLarge(f"response of {length} bytes exceeds the limit of {limit} bytes", host=self.host)
        chunks: list[bytes] = []
        total = 0
        for chunk in response.iter_content(65536):
            total += len(chunk)
            if total > limit:
                response.close()
                raise ResponseTooLarge(f"response exceeds the limit of {limit} bytes", host=self.host)
            chunks.append(chunk)
        return b"".join(chunks)

    def _decrypt(self, body: bytes, content_type: str, request: WsmanRequest) -> bytes:
        if self._encryption is None:
            raise ProtocolError("encrypted reply to an unencrypted request", host=self.host)
        part = framing.unframe(body)
        try:
            plaintext: bytes = self._encryption._decrypt_message(  # pywinrm's unseal for this auth
                len(part.header).to_bytes(4, "little") + part.header + part.sealed, self._hostname
            )
        except Exception as exc:
            raise ProtocolError(
                f"cannot decrypt the reply (corrupted or tampered): {_describe(exc)}",
                host=self.host,
                request_xml=request.payload,
            ) from exc
        if len(plaintext) != part.length and self.options.transport == "ntlm":
            raise ProtocolError("decrypted length differs from OriginalContent Length", host=self.host)
        return plaintext


def _send_sealed(
    session: requests.Session, prepared: requests.PreparedRequest, timeout: tuple[float, float]
) -> requests.Response:
    """Send a sealed request through the session's adapter, without ``Session.send``.

    After the handshake there is no response hook left to run, and no redirect may be followed
    (a sealed body must never go elsewhere), so what ``Session.send`` adds is only cost. Cookies
    a server sets (load-balancer affinity) are still kept for the next request.
    """
    adapter = session.get_adapter(prepared.url or "")
    verify = True if session.verify is None else session.verify
    response: requests.Response = adapter.send(
        prepared, stream=True, timeout=timeout, verify=verify, cert=session.cert, proxies=session.proxies
    )
    if "set-cookie" in response.headers:
        requests.cookies.extract_cookies_to_jar(session.cookies, prepared, response.raw)  # type: ignore[no-untyped-call]
    return response


class _Retryable(Exception):
    def __init__(self, error: HvjobError, cause: BaseException | None, *, provably_unsent: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.cause = cause
        self.provably_unsent = provably_unsent


def _maybe_sent(exc: BaseException) -> bool:
    """False only when the failure proves nothing was written (no connection was made)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8:
        chain.append(current)
        nxt = current.__cause__ or current.__context__
        reason = getattr(current, "reason", None)
        current = reason if isinstance(reason, BaseException) else nxt
    for item in chain:
        if isinstance(
            item,
            (
                urllib3.exceptions.NewConnectionError,
                urllib3.exceptions.ConnectTimeoutError,
                requests.exceptions.ConnectTimeout,
                ConnectionRefusedError,
                ssl.SSLError,
                urllib3.exceptions.NameResolutionError,
            ),
        ):
            return False
    return True


def _charset(content_type: str) -> str | None:
    match = re.search(r"charset=\"?([A-Za-z0-9_-]+)", content_type or "")
    return match.group(1) if match else None
