"""One WS-Man session per host: an authenticated keep-alive connection, reused for every request.

:class:`WsmanSession` puts the parts together: :class:`~hvjob.transport.http.HttpChannel` (the
HTTP exchange), an authenticator (:mod:`hvjob.transport.auth`), a
:class:`~hvjob.transport.sealing.MessageSealer` when messages are encrypted, and the recovery of
a keep-alive connection that the server closed. Replies are checked and decoded by
:func:`hvjob.wire.parse.parse_response`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hvjob.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    HvjobError,
    NameResolutionFailed,
    OutcomeUnknown,
    ProtocolError,
)
from hvjob.transport.auth import Authenticator, authenticator
from hvjob.transport.boundary import Progress
from hvjob.transport.http import SOAP_CONTENT_TYPE, HttpChannel, HttpReply
from hvjob.transport.options import ConnectionOptions, check_security, endpoint_url
from hvjob.transport.sealing import MessageSealer
from hvjob.wire import framing
from hvjob.wire.build import HeaderOptions, WsmanRequest, build_identify
from hvjob.wire.parse import IdentifyResult, Result, parse_response

log = logging.getLogger("hvjob.transport")
wire_log = logging.getLogger("hvjob.wire.traffic")

Recorder = Callable[[WsmanRequest, int, bytes], None]


@dataclass
class _Connection:
    """What one authenticated connection holds; dropped as a whole when it is lost."""

    channel: HttpChannel
    auth: Authenticator
    sealer: MessageSealer | None


class _Lost(Exception):
    """The connection failed under a request; ``unsent``: provably before the server saw it."""

    def __init__(self, error: HvjobError, *, unsent: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.unsent = unsent


class CancelFlag(Protocol):
    """What is checked before a request is (re)sent: a ``threading.Event`` or a fan-out's flag."""

    def is_set(self) -> bool: ...


class WsmanSession:
    """One host: an authenticated keep-alive connection, reused for every request.

    Thread-safe by serialisation: requests to one host go one at a time, as on a single
    authenticated connection they must. Nothing touches the network before the first request.
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
        check_security(self.url, options)
        self.host = host
        self.options = options
        self.header_options = HeaderOptions(to=self.url, operation_timeout_s=options.operation_timeout)
        self.recorder = recorder
        self.trace = trace or wire_log.isEnabledFor(logging.DEBUG)
        self._lock = threading.RLock()
        self._connection: _Connection | None = None
        self._reusable: HttpChannel | None = None  # an open channel whose authentication was lost
        self.reconnects = 0
        self.cancel: CancelFlag | None = None  # set by the job client: once set, nothing is resent

    def __repr__(self) -> str:
        return f"WsmanSession(url={self.url!r}, transport={self.options.transport!r}, user={self.options.username!r})"

    @property
    def connected(self) -> bool:
        """Whether an authenticated connection is open (after the first request, until close())."""
        return self._connection is not None

    def __enter__(self) -> WsmanSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection and forget its security context (and with it every secret)."""
        with self._lock:
            for channel in (self._connection.channel if self._connection else None, self._reusable):
                if channel is not None:
                    channel.close()
            self._connection = self._reusable = None

    # --- sending ---------------------------------------------------------------------------

    def send(self, request: WsmanRequest) -> Result:
        """Send ``request`` and return its checked, decoded reply; raise an hvjob error otherwise."""
        with self._lock:
            status, body, content_type = self._exchange(request)
        if self.recorder is not None:
            self.recorder(request, status, body)
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
            encoding=_charset(content_type),
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
        channel = HttpChannel(self.url, self.options, host=self.host)
        try:
            reply = channel.post(
                request.payload,
                {"WSMANIDENTIFY": "unauthenticated", "Content-Type": SOAP_CONTENT_TYPE},
                request=request,
            )
        finally:
            channel.close()
        return parse_response(
            request,
            reply.body,
            host=self.host,
            http_status=reply.status,
            max_bytes=self.options.max_response_bytes,
            encoding=_charset(reply.headers.get("Content-Type", "")),
        )

    def _connect(self) -> _Connection:
        """The authenticated connection, made (handshake included) when there is none."""
        if self._connection is not None:
            return self._connection
        auth = authenticator(self.url, self.options, host=self.host)
        channel, self._reusable = self._reusable, None
        if channel is None:
            certificate = self.options.transport == "certificate"
            channel = HttpChannel(self.url, self.options, host=self.host, client_certificate=certificate)
        try:
            sealer = auth.handshake(channel)
        except BaseException:
            channel.close()
            raise
        self._connection = _Connection(channel, auth, sealer)
        return self._connection

    def _exchange(self, request: WsmanRequest) -> tuple[int, bytes, str]:
        fresh = self._connection is None
        try:
            return self._exchange_once(request)
        except _Lost as lost:
            # The server closed the connection we had (idle keep-alive), lost our authentication,
            # or cut a response short. A connection that never carried a request is a dead host.
            if (fresh and lost.unsent) or not (lost.unsent or request.safe_to_resend):
                raise lost.error from lost.error.__cause__
            if self.cancel is not None and self.cancel.is_set():  # Ctrl-C: no new request, a resend included
                raise lost.error from lost.error.__cause__
            log.info("%s: reconnecting and re-authenticating (%s)", self.host, lost.error.message)
            self.reconnects += 1
            try:
                return self._exchange_once(request)
            except _Lost as again:
                raise again.error from again.error.__cause__

    def _exchange_once(self, request: WsmanRequest) -> tuple[int, bytes, str]:
        connection = self._connect()
        if self.trace:
            wire_log.debug("%s >>> %s", self.host, request.payload.decode("utf-8", "replace"))
        headers = dict(connection.auth.request_headers())
        if connection.sealer is not None:
            try:
                headers["Content-Type"], body = connection.sealer.seal(request)
            except HvjobError:
                self.close()  # the context's sequence state is no longer the server's
                raise
        else:
            headers["Content-Type"], body = SOAP_CONTENT_TYPE, request.payload
        progress = Progress()
        try:
            reply = connection.channel.post(body, headers, request=request, progress=progress)
        except (ConnectionFailed, OutcomeUnknown) as error:
            if isinstance(error, NameResolutionFailed):
                raise
            self.close()
            raise _Lost(error, unsent=not progress.sent) from error
        return self._plaintext(connection, reply, request)

    def _plaintext(self, connection: _Connection, reply: HttpReply, request: WsmanRequest) -> tuple[int, bytes, str]:
        status, body = reply.status, reply.body
        content_type = reply.headers.get("Content-Type", "")
        if status == 401 and connection.auth.binds_connection:
            # urllib3 opened a new connection under us (the server had closed ours): a 401 proves the
            # request was not processed. That connection is kept, to be authenticated in its turn.
            self._connection, self._reusable = None, connection.channel
            raise _Lost(AuthenticationFailed("server asked to re-authenticate", host=self.host), unsent=True)
        if framing.is_encrypted(content_type):
            if connection.sealer is None:
                raise ProtocolError("encrypted reply to an unencrypted request", host=self.host)
            try:
                body = connection.sealer.unseal(body, request)
            except HvjobError:
                self.close()  # the context's sequence state is no longer the server's
                raise
        elif connection.sealer is not None and body and status in (200, 500):
            raise ProtocolError(
                "server answered an encrypted request in clear",
                host=self.host,
                request_xml=request.payload,
                response_xml=body[:65536],
            )
        if self.trace:
            wire_log.debug("%s <<< HTTP %s %s", self.host, status, body.decode("utf-8", "replace"))
        return status, body, content_type


def _charset(content_type: str) -> str | None:
    match = re.search(r"charset=\"?([A-Za-z0-9_-]+)", content_type or "")
    return match.group(1) if match else None
