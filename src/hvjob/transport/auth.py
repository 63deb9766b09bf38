"""Authentication on pyspnego's public API: NTLM, Kerberos and CredSSP handshakes; Basic and
client-certificate headers.

A handshake sends its first token with the first request (no anonymous request that only earns
a ``401``), on POSTs with an empty body: an authentication leg never carries a WS-Man request, so
a failed handshake proves that nothing was run. A fresh NTLM session is therefore two exchanges
before the first request, Kerberos one. The exceptions: Kerberos over HTTPS with channel binding
needs the server's certificate before its first token, so one anonymous request comes first;
and a server that refuses the scheme of the first token (``NTLM`` instead of ``Negotiate``) gets
the other one on the next leg.

Secrets (the NT hash, the Basic header, every token) live in the authenticator and the context
of one session, and are never logged: only the scheme and the number of legs are.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import spnego
import spnego.channel_bindings

from hvjob.errors import AuthenticationFailed, ProtocolError, UsageError
from hvjob.transport.boundary import foreign_errors
from hvjob.transport.http import HttpChannel, HttpReply
from hvjob.transport.nthash import nt_hash
from hvjob.transport.options import ConnectionOptions, seals_messages
from hvjob.transport.sealing import MessageSealer

log = logging.getLogger("hvjob.transport")

#: What a WinRM client sends in ``Authorization`` to authenticate with its TLS client certificate
#: ([MS-WSMV] 2.2.9.2, the https/mutual security profile).
CERTIFICATE_AUTH_HEADER = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"

#: HTTP schemes per method, the preferred first. Windows offers ``Negotiate`` and takes a raw
#: NTLM or Kerberos token in it (NOTES 4); a server offering only ``NTLM``/``Kerberos`` gets that.
_SCHEMES: dict[str, tuple[str, ...]] = {
    "ntlm": ("Negotiate", "NTLM"),
    "kerberos": ("Negotiate", "Kerberos"),
    "credssp": ("CredSSP",),
}
_MAX_LEGS = 12  # CredSSP takes five or six; anything longer is a server that never finishes


def offered_schemes(headers: Mapping[str, str]) -> list[str]:
    """The scheme names of a ``WWW-Authenticate`` header (several headers arrive comma-joined)."""
    value = headers.get("WWW-Authenticate", "") or ""
    return re.findall(r"(?:^|,)\s*([A-Za-z][\w-]*)(?=\s|,|$)", value)


def _token(headers: Mapping[str, str], scheme: str) -> bytes | None:
    value = headers.get("WWW-Authenticate", "") or ""
    match = re.search(rf"(?:^|,)\s*{scheme}\s+([A-Za-z0-9+/]+=*)", value, re.IGNORECASE)
    if match is None:
        return None
    try:
        return base64.b64decode(match.group(1), validate=True)
    except ValueError:
        raise ProtocolError(f"malformed {scheme} token in WWW-Authenticate") from None


def _authorization(scheme: str, token: bytes) -> dict[str, str]:
    return {"Authorization": f"{scheme} {base64.b64encode(token).decode('ascii')}"}


def channel_bindings(certificate: bytes) -> spnego.channel_bindings.GssChannelBindings:
    """``tls-server-end-point`` bindings (RFC 5929 4.1): the certificate's hash, with its own
    signature hash unless that is MD5 or SHA-1 (then SHA-256)."""
    from cryptography import x509

    name = "sha256"
    try:
        algorithm = x509.load_der_x509_certificate(certificate).signature_hash_algorithm
    except Exception:  # an unknown signature algorithm: SHA-256, as the RFC says for the weak ones
        algorithm = None
    if algorithm is not None and algorithm.name not in ("md5", "sha1"):
        name = algorithm.name
    digest = hashlib.new(name, certificate).digest()
    return spnego.channel_bindings.GssChannelBindings(application_data=b"tls-server-end-point:" + digest)


class Authenticator:
    """Basic and certificate authentication: a header on every request, no handshake."""

    sealing = False
    #: NTLM, Kerberos and CredSSP authenticate the connection: a 401 after their handshake means
    #: the connection changed under the session. A 401 to Basic or a certificate is a refusal.
    binds_connection = False

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def request_headers(self) -> Mapping[str, str]:
        """What each request carries once the session is authenticated."""
        return self._headers

    def handshake(self, channel: HttpChannel) -> MessageSealer | None:
        """Authenticate ``channel``'s connection; the sealer when messages are to be sealed."""
        return None


class SpnegoAuthenticator(Authenticator):
    """NTLM, Kerberos or CredSSP through a pyspnego client context, one per connection."""

    binds_connection = True

    def __init__(self, url: str, options: ConnectionOptions, *, host: str) -> None:
        super().__init__({})
        self.method = options.transport
        self.sealing = seals_messages(url, options)
        self._https = urlsplit(url).scheme == "https"
        self._options = options
        self._host = host
        self._spn_host = options.spn_hostname or urlsplit(url).hostname or host
        self._spn_service = options.spn_service or "HTTP"
        self._credential = self._credentials(options)
        self._hint = ""
        if self.method == "kerberos":
            spn = f"{self._spn_service}/{self._spn_host}"
            self._hint = (
                f"check the SPN {spn} (spn_service, spn_hostname)"
                if options.password is not None
                else f"no usable ticket? run kinit, or give a password; check the SPN {spn} (spn_service, spn_hostname)"
            )

    @staticmethod
    def _credentials(options: ConnectionOptions) -> Any:
        """The credential pyspnego gets: for NTLM the NT hash (pyspnego would otherwise derive the
        unused LM hash too, with pure-Python DES, for every context)."""
        user, password = options.username, options.password
        if options.transport == "ntlm":
            if not user or password is None:
                raise UsageError("NTLM needs a username and a password")
            return spnego.NTLMHash(username=user, nt_hash=nt_hash(password))
        if options.transport == "credssp" and (not user or password is None):
            raise UsageError("CredSSP needs a username and a password (it delegates them to the node)")
        return None

    def _context(self, bindings: spnego.channel_bindings.GssChannelBindings | None) -> Any:
        options = spnego.NegotiateOptions.wrapping_winrm if self.sealing else spnego.NegotiateOptions.none
        if self._credential is not None:
            username: Any = self._credential
            password = None
        else:
            username, password = self._options.username, self._options.password
        return spnego.client(
            username,
            password,
            hostname=self._spn_host,
            service=self._spn_service,
            channel_bindings=bindings,
            protocol=self.method,
            options=options,
        )

    def handshake(self, channel: HttpChannel) -> MessageSealer | None:
        certificate: bytes | None = None
        schemes = list(_SCHEMES[self.method])
        bind = self._https and self._options.send_cbt and self.method != "credssp"  # CredSSP binds inside
        if bind and self.method == "kerberos":
            # The AP-REQ carries the bindings, so the certificate must be known first.
            reply = channel.post(b"", {}, peer_certificate=True)
            if reply.status != 401:
                raise ProtocolError(f"unexpected HTTP {reply.status} to an unauthenticated request", host=self._host)
            certificate = reply.peer_certificate
            schemes = self._usable(schemes, offered_schemes(reply.headers))
        tried: list[str] = []
        while schemes:
            scheme = schemes.pop(0)
            tried.append(scheme)
            with foreign_errors("connect", host=self._host, hint=self._hint):
                bindings = (
                    channel_bindings(certificate) if certificate is not None and self.method == "kerberos" else None
                )
                context = self._context(bindings)
                token = context.step()
            outcome = self._legs(channel, context, scheme, token, bind)
            if isinstance(outcome, list):  # the server refused this scheme before any challenge
                schemes = self._usable(schemes, outcome)
                continue
            return MessageSealer(context, self.method, self._host) if self.sealing else None
        raise AuthenticationFailed(
            f"the server offers none of the {self.method} schemes tried ({', '.join(tried)})", host=self._host
        )

    @staticmethod
    def _usable(schemes: list[str], offered: list[str]) -> list[str]:
        names = {name.lower() for name in offered}
        return [scheme for scheme in schemes if scheme.lower() in names]

    def _legs(
        self, channel: HttpChannel, context: Any, scheme: str, token: bytes | None, bind: bool
    ) -> list[str] | None:
        """Exchange tokens until the server accepts. None when authenticated; the schemes the
        server offers instead when it refused ``scheme`` outright."""
        certificate: bytes | None = None
        for leg in range(_MAX_LEGS):
            if token is None:
                raise AuthenticationFailed(f"{self.method}: no token to send", host=self._host)
            reply: HttpReply = channel.post(b"", _authorization(scheme, token), peer_certificate=bind and leg == 0)
            certificate = certificate or reply.peer_certificate
            answer = _token(reply.headers, scheme)
            if reply.status == 200:
                if answer and not context.complete:
                    with foreign_errors("connect", host=self._host, hint=self._hint):
                        context.step(answer)  # Kerberos mutual authentication
                if not context.complete:
                    raise AuthenticationFailed(
                        f"the server accepted before {self.method} authentication completed", host=self._host
                    )
                log.debug("%s: authenticated with %s (%s), %d legs", self._host, self.method, scheme, leg + 1)
                return None
            if reply.status != 401:
                raise ProtocolError(f"unexpected HTTP {reply.status} while authenticating", host=self._host)
            if answer is None:
                offered = offered_schemes(reply.headers)
                if leg == 0 and scheme.lower() not in {name.lower() for name in offered}:
                    return offered
                raise AuthenticationFailed(f"{self.method} credentials rejected (HTTP 401)", host=self._host)
            if context.complete:
                raise AuthenticationFailed(f"the server asked for more after {self.method} completed", host=self._host)
            with foreign_errors("connect", host=self._host, hint=self._hint):
                bindings = channel_bindings(certificate) if bind and certificate is not None else None
                token = context.step(answer, channel_bindings=bindings)
        raise AuthenticationFailed(f"{self.method} authentication did not finish in {_MAX_LEGS} legs", host=self._host)


def authenticator(url: str, options: ConnectionOptions, *, host: str) -> Authenticator:
    """The authenticator for ``options.transport``; a UsageError when its credentials are missing."""
    method = options.transport
    if method == "basic":
        if not options.username or options.password is None:
            raise UsageError("Basic authentication needs a username and a password")
        secret = base64.b64encode(f"{options.username}:{options.password}".encode()).decode("ascii")
        return Authenticator({"Authorization": f"Basic {secret}"})
    if method == "certificate":
        return Authenticator({"Authorization": CERTIFICATE_AUTH_HEADER})
    return SpnegoAuthenticator(url, options, host=host)
