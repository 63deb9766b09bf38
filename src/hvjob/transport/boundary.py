"""The exception boundary: every foreign exception becomes an :mod:`hvjob.errors` error here.

Every call into requests, urllib3, ssl, pyspnego, gssapi or krb5 runs inside
:func:`foreign_errors`, named by its *seam*:

    connect   set-up of the authenticated session: TLS trust and client certificate, the security
              context (credentials from a ticket cache or a password), its steps
    send      one HTTP request, up to the response's status line and headers (TCP/TLS connect
              included, so a connection refused or a certificate rejected shows up here)
    receive   reading the response body
    seal      sealing a request with the security context
    unseal    unsealing a reply with it

:func:`translate` is the one mapping, by exception class first and seam second (the table is
in docs/transport.md; tests/test_boundary.py checks every class of those libraries at every
seam against it). ``KeyboardInterrupt`` and ``SystemExit`` are never caught.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import requests.exceptions
import spnego.exceptions
import urllib3.exceptions

from hvjob.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    HvjobError,
    NameResolutionFailed,
    OutcomeUnknown,
    ProtocolError,
    RequestTimedOut,
    TLSFailed,
    UsageError,
)
from hvjob.wire.build import WsmanRequest

Seam = Literal["connect", "send", "receive", "seal", "unseal"]
SEAMS: tuple[Seam, ...] = ("connect", "send", "receive", "seal", "unseal")


@dataclass
class Progress:
    """How far a request got: ``sent`` once it may have reached the server."""

    sent: bool = False


@contextlib.contextmanager
def foreign_errors(
    seam: Seam,
    *,
    host: str,
    request: WsmanRequest | None = None,
    progress: Progress | None = None,
    hint: str = "",
) -> Iterator[None]:
    """Run foreign code; re-raise what it raises as an hvjob error (``from`` the original).

    ``progress`` is updated at the ``send`` seam (a failure that proves nothing was written
    leaves ``sent`` false) and read at ``receive`` (always sent). ``hint`` is appended to an
    authentication error's message (what to check, e.g. the ticket cache and the SPN).
    """
    try:
        yield
    except HvjobError:
        raise
    except Exception as exc:
        sent = seam == "receive" or (progress is not None and progress.sent)
        if seam == "send":
            sent = maybe_sent(exc)
        if progress is not None:
            progress.sent = sent
        raise translate(exc, host=host, request=request, sent=sent, seam=seam, hint=hint) from exc


# --- classification ------------------------------------------------------------------------------

#: Mistakes in what the caller configured: the same answer at every seam (exit 2).
_CONFIGURATION: tuple[type[BaseException], ...] = (
    requests.exceptions.InvalidURL,  # InvalidProxyURL too
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.URLRequired,
    requests.exceptions.InvalidHeader,
    urllib3.exceptions.LocationValueError,  # LocationParseError, URLSchemeUnknown, ProxySchemeUnknown
    urllib3.exceptions.ProxySchemeUnsupported,
    spnego.exceptions.FeatureMissingError,  # the installed GSSAPI cannot do what was asked
)
_TLS: tuple[type[BaseException], ...] = (
    ssl.SSLError,
    ssl.CertificateError,
    requests.exceptions.SSLError,
    urllib3.exceptions.SSLError,
)
_CONNECT_TIMEOUT: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectTimeout,
    urllib3.exceptions.ConnectTimeoutError,
)
_NOT_A_TIMEOUT: tuple[type[BaseException], ...] = (urllib3.exceptions.NewConnectionError,)  # a timeout by descent only
_READ_TIMEOUT: tuple[type[BaseException], ...] = (
    requests.exceptions.Timeout,
    urllib3.exceptions.TimeoutError,
    TimeoutError,  # socket.timeout
)
_NAME_RESOLUTION: tuple[type[BaseException], ...] = (urllib3.exceptions.NameResolutionError, socket.gaierror)
_PROXY: tuple[type[BaseException], ...] = (requests.exceptions.ProxyError, urllib3.exceptions.ProxyError)
_UNDECODABLE: tuple[type[BaseException], ...] = (
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.DecodeError,
)
_CONNECTION: tuple[type[BaseException], ...] = (
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,  # ConnectionError, BrokenPipeError, ...
)
#: Raised only after nothing was written: the request provably did not reach the server.
_BEFORE_SENDING: tuple[type[BaseException], ...] = (
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ConnectTimeoutError,
    requests.exceptions.ConnectTimeout,
    ConnectionRefusedError,
    socket.gaierror,
    ssl.SSLError,
    urllib3.exceptions.SSLError,
    requests.exceptions.SSLError,
    urllib3.exceptions.ProxyError,
    requests.exceptions.ProxyError,
)
_NAME_ERRORS = (
    "Name or service not known",
    "nodename nor servname",
    "Temporary failure in name resolution",
    "No address associated",
    "getaddrinfo failed",
    "Failed to resolve",
)


@functools.cache
def _authentication_libraries() -> tuple[type[BaseException], ...]:
    """pyspnego's errors and, when installed, those of the GSSAPI and krb5 bindings below it."""
    found: list[type[BaseException]] = [spnego.exceptions.SpnegoError]
    native = getattr(spnego.exceptions, "NativeError", None)
    if isinstance(native, type) and issubclass(native, Exception):
        found.append(native)
    with contextlib.suppress(ImportError):
        from gssapi.raw.misc import GSSError

        found.append(GSSError)
    with contextlib.suppress(ImportError):
        import krb5

        found.append(krb5.Krb5Error)
    return tuple(found)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps: causes, contexts, urllib3's ``reason``, requests' first argument."""
    seen: set[int] = set()
    pending = [exc]
    while pending and len(seen) < 12:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        first = current.args[0] if current.args else None
        for inner in (reason, first, current.__cause__, current.__context__):
            if isinstance(inner, BaseException):
                pending.append(inner)


def maybe_sent(exc: BaseException) -> bool:
    """False only when the failure proves nothing was written (no connection was made)."""
    return not any(isinstance(item, _BEFORE_SENDING) for item in _chain(exc))


def _is_name_resolution(exc: BaseException, text: str) -> bool:
    return any(isinstance(item, _NAME_RESOLUTION) for item in _chain(exc)) or any(m in text for m in _NAME_ERRORS)


def _is_connect_timeout(exc: BaseException) -> bool:
    return isinstance(exc, _CONNECT_TIMEOUT) and not isinstance(exc, _NOT_A_TIMEOUT)


def translate(
    exc: BaseException,
    *,
    host: str,
    request: WsmanRequest | None,
    sent: bool,
    seam: Seam = "send",
    hint: str = "",
) -> HvjobError:
    """Map a foreign exception to hvjob's tree (docs/transport.md, "Errors").

    ``sent``: the request may have reached the server; an Invoke that may have run and got no
    usable answer is ``OutcomeUnknown``, never a plain failure.
    """
    if isinstance(exc, HvjobError):
        return exc
    payload = request.payload if request is not None else None
    invoke = request is not None and not request.safe_to_resend
    what = (request.method or request.operation) if request is not None else "the request"
    text = describe(exc)
    suffix = f" ({hint})" if hint else ""

    def made(cls: type[HvjobError], message: str, **kw: Any) -> HvjobError:
        return cls(message, host=host, request_xml=payload, **kw)

    if isinstance(exc, _CONFIGURATION):
        return made(UsageError, f"invalid configuration: {text}")
    if isinstance(exc, _TLS) and seam == "connect":  # loading the CA bundle or the client certificate
        return made(UsageError, f"invalid TLS configuration (ca_trust_path, cert_pem, cert_key_pem): {text}")
    if seam == "seal":
        return made(AuthenticationFailed, f"cannot seal the request with the negotiated security context: {text}")
    if seam == "unseal":
        return made(ProtocolError, f"cannot decrypt the reply (corrupted or tampered): {text}")
    if isinstance(exc, _authentication_libraries()):
        return made(AuthenticationFailed, f"authentication failed: {text}{suffix}")
    if isinstance(exc, _TLS) and seam != "receive":
        return made(TLSFailed, f"TLS failed: {text}")
    if _is_connect_timeout(exc):
        return made(RequestTimedOut, f"connect timed out: {text}", connect=True)
    if isinstance(exc, _READ_TIMEOUT) and not isinstance(exc, _NOT_A_TIMEOUT):
        if invoke and sent:
            return made(OutcomeUnknown, f"no answer to {what} within the read timeout; it may have run: {text}")
        return made(RequestTimedOut, f"read timed out: {text}")
    if isinstance(exc, _UNDECODABLE):
        return made(ProtocolError, f"undecodable reply: {text}")
    if isinstance(exc, (*_CONNECTION, *_TLS)):
        if sent and invoke:
            return made(OutcomeUnknown, f"connection lost after {what} was sent; it may have run: {text}")
        answered = seam == "receive"  # the status line and headers came: the host was reached
        if _is_name_resolution(exc, text):
            return made(NameResolutionFailed, f"cannot resolve host: {text}", answered=answered)
        if isinstance(exc, _PROXY):
            return made(ConnectionFailed, f"proxy failed: {text}", answered=answered)
        if answered:
            return made(ConnectionFailed, f"connection lost while reading the reply: {text}", answered=True)
        if _in_chain(exc, ConnectionRefusedError):  # the common case, said plainly (urllib3 says it thrice)
            return made(ConnectionFailed, "connection refused: nothing accepts connections at that address and port")
        if _in_chain(exc, ConnectionResetError):
            return made(ConnectionFailed, "connection reset by the server before it answered")
        return made(ConnectionFailed, f"connection failed: {text}")
    # Anything else (ValueError, KeyError, struct.error ... from a library meeting the unexpected).
    if seam == "connect":
        return made(AuthenticationFailed, f"authentication failed: {text}{suffix}")
    if sent and invoke:
        return made(OutcomeUnknown, f"unexpected failure after {what} was sent; it may have run: {text}")
    return made(ProtocolError, f"unexpected failure: {text}")


def _in_chain(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        reason = getattr(current, "reason", None)
        current = reason if isinstance(reason, BaseException) else (current.__cause__ or current.__context__)
    return False


_USERINFO_IN_URL = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/\s@]+@")


def describe(exc: BaseException) -> str:
    """A one-line description of a foreign exception and what it wraps; never a credential.

    User information in a URL (a proxy's ``user:password@``) is removed.
    """
    parts: list[str] = []
    for item in _chain(exc):
        if len(parts) >= 4:
            break
        try:
            text = str(item).strip() or type(item).__name__
        except Exception:  # some foreign exceptions cannot even format themselves
            text = type(item).__name__
        if not any(text in part for part in parts):
            parts.append(text)
    return _USERINFO_IN_URL.sub(r"\1***@", "; ".join(parts))[:500]
