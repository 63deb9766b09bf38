"""HTTP transport: one authenticated, keep-alive WS-Man session per host.

Authentication and message encryption stand on pyspnego's public API (``spnego.client``,
``wrap_winrm`` / ``unwrap_winrm``) for NTLM, Kerberos and CredSSP; Basic and client certificates
are headers. The HTTP exchange goes through requests' adapter. The modules, each one concept:

    options    ConnectionOptions, endpoint URLs, the checks made before anything is sent
    boundary   the one place where foreign exceptions become hvjob errors (translate)
    http       the HTTP exchange on one keep-alive connection
    auth       the handshakes (NTLM, Kerberos, CredSSP) and the Basic/certificate headers
    sealing    message encryption with the authenticated context
    nthash     the NTLM NT hash (pure-Python MD4)
    session    WsmanSession, which puts them together
"""

from hvjob.transport.boundary import SEAMS, Seam, translate
from hvjob.transport.nthash import nt_hash
from hvjob.transport.options import (
    AUTH_METHODS,
    AuthMethod,
    ConnectionOptions,
    Encryption,
    check_security,
    default_port,
    endpoint_url,
    without_userinfo,
)
from hvjob.transport.session import Recorder, WsmanSession

__all__ = [
    "AUTH_METHODS",
    "SEAMS",
    "AuthMethod",
    "ConnectionOptions",
    "Encryption",
    "Recorder",
    "Seam",
    "WsmanSession",
    "check_security",
    "default_port",
    "endpoint_url",
    "nt_hash",
    "translate",
    "without_userinfo",
]
