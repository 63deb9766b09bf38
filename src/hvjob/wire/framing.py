"""The ``multipart/encrypted`` framing of WinRM message encryption ([MS-WSMV] 2.2.9.1).

Pure framing: the caller seals and unseals. One part per message::

    --Encrypted Boundary\\r\\n
    \\tContent-Type: <protocol>\\r\\n
    \\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=<n>\\r\\n
    --Encrypted Boundary\\r\\n
    \\tContent-Type: application/octet-stream\\r\\n
    <uint32 LE header length><header><sealed payload>--Encrypted Boundary--\\r\\n

Parsed structurally from both ends: the sealed payload may contain the boundary bytes, so the
body is never split on them.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from hvjob.errors import ProtocolError

BOUNDARY = b"--Encrypted Boundary"
SPNEGO_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
KERBEROS_PROTOCOL = "application/HTTP-Kerberos-session-encrypted"
CREDSSP_PROTOCOL = "application/HTTP-CredSSP-session-encrypted"
KNOWN_PROTOCOLS = frozenset({SPNEGO_PROTOCOL, KERBEROS_PROTOCOL, CREDSSP_PROTOCOL})

_OCTET_LINE = b"\tContent-Type: application/octet-stream\r\n"
_LENGTH = re.compile(rb"Length=(\d+)")


@dataclass(frozen=True)
class EncryptedPart:
    protocol: str
    length: int  # OriginalContent Length: the plaintext length
    header: bytes  # the seal's signature / token header
    sealed: bytes
    charset: str = "UTF-8"


def content_type(protocol: str) -> str:
    return f'multipart/encrypted;protocol="{protocol}";boundary="Encrypted Boundary"'


def is_encrypted(content_type_header: str | None) -> bool:
    return bool(content_type_header) and "multipart/encrypted" in (content_type_header or "").lower()


def protocol_of(content_type_header: str) -> str | None:
    match = re.search(r'protocol="?([^";]+)"?', content_type_header, re.IGNORECASE)
    return match.group(1) if match else None


def frame(protocol: str, plaintext_length: int, header: bytes, sealed: bytes) -> bytes:
    return b"".join(
        (
            BOUNDARY,
            b"\r\n\tContent-Type: ",
            protocol.encode("ascii"),
            b"\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=",
            str(plaintext_length).encode("ascii"),
            b"\r\n",
            BOUNDARY,
            b"\r\n",
            _OCTET_LINE,
            struct.pack("<I", len(header)),
            header,
            sealed,
            BOUNDARY,
            b"--\r\n",
        )
    )


def unframe(body: bytes) -> EncryptedPart:
    """Split one encrypted message into its parts; any deviation is a ProtocolError."""
    if not body.startswith(BOUNDARY + b"\r\n"):
        raise ProtocolError("encrypted body does not start with the Encrypted Boundary")
    pos = len(BOUNDARY) + 2
    headers: dict[str, str] = {}
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            raise ProtocolError("encrypted body ends inside its part headers")
        line = body[pos:end]
        pos = end + 2
        if line == BOUNDARY:
            break
        if not line.startswith(b"\t") or b":" not in line:
            raise ProtocolError("malformed part header in encrypted body")
        key, _, value = line[1:].partition(b":")
        headers[key.strip().decode("ascii", "replace").lower()] = value.strip().decode("ascii", "replace")
        if len(headers) > 8:
            raise ProtocolError("too many part headers in encrypted body")
    if not body.startswith(_OCTET_LINE, pos):
        raise ProtocolError("encrypted body lacks the application/octet-stream part")
    pos += len(_OCTET_LINE)
    protocol = headers.get("content-type", "")
    original = headers.get("originalcontent", "")
    match = _LENGTH.search(original.encode("ascii", "replace"))
    if not protocol or match is None:
        raise ProtocolError("encrypted body lacks Content-Type or OriginalContent Length")
    tail = body.rstrip(b"\r\n")
    if not tail.endswith(BOUNDARY + b"--"):
        raise ProtocolError("encrypted body is truncated (no closing boundary)")
    payload_end = len(tail) - len(BOUNDARY) - 2
    if payload_end < pos + 4:
        raise ProtocolError("encrypted body is truncated")
    (header_len,) = struct.unpack("<I", body[pos : pos + 4])
    pos += 4
    if header_len > 4096 or pos + header_len > payload_end:
        raise ProtocolError("encrypted body has an impossible signature length")
    charset = "UTF-8"
    cmatch = re.search(r"charset=([A-Za-z0-9_-]+)", original)
    if cmatch:
        charset = cmatch.group(1)
    return EncryptedPart(
        protocol=protocol,
        length=int(match.group(1)),
        header=body[pos : pos + header_len],
        sealed=body[pos + header_len : payload_end],
        charset=charset,
    )
