"""Connection options, endpoint URLs and the checks made before anything is sent.

Everything here runs without the network: a mistake in the options is a :class:`UsageError`
(exit 2) before the first connection, never a connection failure.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import os
import re
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import urlsplit

from hvjob.errors import UsageError
from hvjob.wire.xmlsafe import DEFAULT_MAX_BYTES

log = logging.getLogger("hvjob.transport")

AuthMethod = Literal["ntlm", "kerberos", "credssp", "basic", "certificate"]
Encryption = Literal["auto", "always", "never"]
AUTH_METHODS: tuple[str, ...] = ("ntlm", "kerberos", "credssp", "basic", "certificate")
#: Methods whose security context can seal messages ([MS-WSMV] 2.2.9.1).
SEALING_METHODS = frozenset({"ntlm", "kerberos", "credssp"})


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


_USERINFO = "a host must not carry user information ('user:password@'): give the user and the password apart from it"


def without_userinfo(host: str) -> str:
    """``host`` with everything up to its last ``@`` (a ``user:password``, whatever it holds) shown
    as ``***@``, for messages about it."""
    if "@" not in host:
        return host
    scheme, sep, rest = host.partition("://") if "://" in host else ("", "", host)
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


#: A DNS name, a NetBIOS name or an IPv4 address (IPv6 addresses are checked apart).
_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})")


def endpoint_url(host: str, options: ConnectionOptions) -> str:
    """``name``, ``name:port`` or a full ``http(s)://name:port/wsman`` URL to an endpoint URL.

    A host with user information (``http://user:pw@node/wsman``, ``user:pw@node:5985``) is refused
    without repeating it: the password would otherwise reach ``a:To``, reprs, logs and results.
    """
    if "@" in host:  # no host name, address or WinRM path has one; a password may hold a '/'
        raise UsageError(_USERINFO)
    if "://" in host:
        try:
            parts = urlsplit(host)
            port = parts.port
        except ValueError:  # an unclosed [, a port that is not a number
            raise UsageError(f"invalid endpoint URL {host!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"invalid endpoint URL {host!r}")
        if port is not None and not 0 < port < 65536:
            raise UsageError(f"invalid port {port}")
        return host
    name, port = host, options.port
    match = re.fullmatch(r"\[?([^\[\]]+?)\]?(?::(\d+))?", host)
    if match is None or not match.group(1):
        raise UsageError(f"invalid host {host!r}")
    if match.group(2) and (":" not in match.group(1) or host.startswith("[")):
        name, port = match.group(1), int(match.group(2))
    elif host.startswith("["):
        name = match.group(1)
    if ":" in name:  # then it must be an IPv6 address (127.0.0.1:abc is a bad port, not one)
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            raise UsageError(f"invalid host {host!r}: a port must be a number, an IPv6 address in [brackets]") from None
    elif not _HOST_NAME.fullmatch(name):
        raise UsageError(f"invalid host name {name!r}")
    if port is None:
        port = default_port(options.scheme)
    if not 0 < port < 65536:
        raise UsageError(f"invalid port {port}")
    shown = f"[{name}]" if ":" in name else name
    return f"{options.scheme}://{shown}:{port}{options.path}"


def default_port(scheme: str) -> int:
    """WinRM's listener ports: 5986 for HTTPS, 5985 for HTTP."""
    return 5986 if scheme == "https" else 5985


def seals_messages(url: str, options: ConnectionOptions) -> bool:
    """Message encryption: asked for, or ``auto`` over plain HTTP (over HTTPS, TLS protects it)."""
    if options.transport not in SEALING_METHODS or options.message_encryption == "never":
        return False
    return options.message_encryption == "always" or urlsplit(url).scheme == "http"


def check_security(url: str, options: ConnectionOptions) -> None:
    """Refuse weak settings unless asked for by name (warn when they are), and every other
    mistake in the options that can be seen without the network: a :class:`UsageError` each."""
    if options.transport not in AUTH_METHODS:
        raise UsageError(f"unknown transport {options.transport!r}")
    if options.message_encryption not in ("auto", "always", "never"):
        raise UsageError(f"unknown message_encryption {options.message_encryption!r}")
    scheme = urlsplit(url).scheme
    if options.message_encryption == "always" and options.transport not in SEALING_METHODS:
        raise UsageError(f"{options.transport} authentication cannot encrypt messages; use HTTPS")
    if scheme == "http":
        encrypting = seals_messages(url, options)
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
    for name, path in (
        ("ca_trust_path", None if options.insecure else options.ca_trust_path),
        ("cert_pem", options.cert_pem if options.transport == "certificate" else None),
        ("cert_key_pem", options.cert_key_pem if options.transport == "certificate" else None),
    ):
        if path is not None and not os.access(path, os.R_OK):
            raise UsageError(f"{name}: cannot read {path!r}")
    if options.transport == "kerberos" and not kerberos_available():
        raise UsageError("Kerberos needs GSSAPI: pip install 'hvjob[kerberos]' (builds against libkrb5-dev)")
    if options.transport == "kerberos" and options.password is not None and not options.username:
        raise UsageError("a Kerberos password needs the principal it belongs to: set username (user@REALM)")
    if options.proxy is not None:
        proxy_scheme = urlsplit(options.proxy).scheme
        if proxy_scheme not in ("http", "https") or not urlsplit(options.proxy).hostname:
            raise UsageError("proxy must be an http:// or https:// URL with a host name")
    for name, value in (("connect_timeout", options.connect_timeout), ("operation_timeout", options.operation_timeout)):
        if not value > 0:
            raise UsageError(f"{name} must be positive")
    if options.max_response_bytes <= 0:
        raise UsageError("max_response_bytes must be positive")


def kerberos_available() -> bool:
    """pyspnego's Kerberos needs the ``gssapi`` and ``krb5`` bindings (``pyspnego[kerberos]``)."""
    return all(importlib.util.find_spec(name) is not None for name in ("gssapi", "krb5"))
