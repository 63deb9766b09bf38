"""The ``multipart/encrypted`` framing of WinRM message encryption ([MS-WSMV] 2.2.9.1).

Pure framing: the caller seals and unseals. Each part of a message::

    --Encrypted Boundary\\r\\n
    \\tContent-Type: <protocol>\\r\\n
    \\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=<n>\\r\\n
    --Encrypted Boundary\\r\\n
    \\tContent-Type: application/octet-stream\\r\\n
    <uint32 LE header length><header><sealed payload>

and after the last part ``--Encrypted Boundary--\\r\\n``. A message has one part
(``multipart/encrypted``), except with CredSSP, which seals at most 16 KiB per part (one TLS
record each) and sends a larger message as ``multipart/x-multi-encrypted`` with several parts
(as Windows, pywinrm and pypsrp do).

Parsed structurally: the sealed payload may contain the boundary bytes, so the body is never
split on them. A single part's payload runs to the closing boundary at the end of the body; in a
CredSSP message each part's header and payload are TLS records, whose own lengths say where the
part ends.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from hvjob.errors import ProtocolError

BOUNDARY = b"--Encrypted Boundary"
SPNEGO_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
KERBEROS_PROTOCOL = "application/HTTP-Kerberos-session-encrypted"
CREDSSP_PROTOCOL = "application/HTTP-CredSSP-session-encrypted"
KNOWN_PROTOCOLS = frozenset({SPNEGO_PROTOCOL, KERBEROS_PROTOCOL, CREDSSP_PROTOCOL})
#: The most plaintext one CredSSP part carries: one TLS record (RFC 5246 6.2.1, 2^14 bytes).
CREDSSP_PART_SIZE = 16384
SINGLE = "multipart/encrypted"
MULTI = "multipart/x-multi-encrypted"

_OCTET_LINE = b"\tContent-Type: application/octet-stream\r\n"
_CLOSING = BOUNDARY + b"--"
_LENGTH = re.compile(rb"Length=(\d+)")
_TLS_APPLICATION_DATA = 0x17  # TLS record content type (RFC 5246 6.2.1; RFC 8446 5.1)
_TLS_RECORD_HEADER = 5
_MAX_PARTS = 4096  # 64 MiB of CredSSP parts: far beyond any reply size limit


@dataclass(frozen=True)
class EncryptedPart:
    protocol: str
    length: int  # OriginalContent Length: the plaintext length (plus the seal's padding)
    header: bytes  # the seal's signature / token header
    sealed: bytes
    charset: str = "UTF-8"


def content_type(protocol: str, *, parts: int = 1) -> str:
    """The Content-Type of a message of ``parts`` parts sealed with ``protocol``."""
    kind = MULTI if parts > 1 else SINGLE
    return f'{kind};protocol="{protocol}";boundary="Encrypted Boundary"'


def is_encrypted(content_type_header: str | None) -> bool:
    value = (content_type_header or "").lower()
    return SINGLE in value or MULTI in value


def protocol_of(content_type_header: str) -> str | None:
    match = re.search(r'protocol="?([^";]+)"?', content_type_header, re.IGNORECASE)
    return match.group(1) if match else None


def _frame_part(part: EncryptedPart) -> bytes:
    return b"".join(
        (
            BOUNDARY,
            b"\r\n\tContent-Type: ",
            part.protocol.encode("ascii"),
            b"\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=",
            str(part.length).encode("ascii"),
            b"\r\n",
            BOUNDARY,
            b"\r\n",
            _OCTET_LINE,
            struct.pack("<I", len(part.header)),
            part.header,
            part.sealed,
        )
    )


def frame_parts(parts: Iterable[EncryptedPart]) -> bytes:
    """The body of a message made of ``parts``, closing boundary included."""
    return b"".join([*(_frame_part(part) for part in parts), _CLOSING, b"\r\n"])


def frame(protocol: str, plaintext_length: int, header: bytes, sealed: bytes) -> bytes:
    """The body of a one-part message."""
    return frame_parts([EncryptedPart(protocol, plaintext_length, header, sealed)])


def unframe(body: bytes) -> EncryptedPart:
    """The one part of a ``multipart/encrypted`` body; any deviation is a ProtocolError."""
    parts = unframe_parts(body)
    if len(parts) != 1:
        raise ProtocolError(f"encrypted body has {len(parts)} parts where one was expected")
    return parts[0]


def unframe_parts(body: bytes) -> list[EncryptedPart]:
    """Every part of an encrypted body, in order; any deviation is a ProtocolError."""
    tail = body.rstrip(b"\r\n")
    if not tail.endswith(_CLOSING):
        raise ProtocolError("encrypted body is truncated (no closing boundary)")
    end = len(tail) - len(_CLOSING)
    parts: list[EncryptedPart] = []
    pos = 0
    while True:
        part, pos = _unframe_part(body, pos, end)
        parts.append(part)
        if pos == end:
            return parts
        if len(parts) >= _MAX_PARTS:
            raise ProtocolError("encrypted body has too many parts")


def _unframe_part(body: bytes, pos: int, end: int) -> tuple[EncryptedPart, int]:
    """The part starting at ``pos`` and where the next one starts (``end``: the closing boundary)."""
    if not body.startswith(BOUNDARY + b"\r\n", pos):
        raise ProtocolError("encrypted part does not start with the Encrypted Boundary")
    pos += len(BOUNDARY) + 2
    headers: dict[str, str] = {}
    while True:
        line_end = body.find(b"\r\n", pos, end)
        if line_end < 0:
            raise ProtocolError("encrypted body ends inside its part headers")
        line = body[pos:line_end]
        pos = line_end + 2
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
    if end < pos + 4:
        raise ProtocolError("encrypted body is truncated")
    (header_len,) = struct.unpack("<I", body[pos : pos + 4])
    pos += 4
    if header_len > 4096 or pos + header_len > end:
        raise ProtocolError("encrypted body has an impossible signature length")
    payload_end = _tls_records_end(body, pos, end) if protocol == CREDSSP_PROTOCOL else end
    if payload_end < pos + header_len:
        raise ProtocolError("encrypted part is shorter than its signature")
    if payload_end != end and not body.startswith(BOUNDARY + b"\r\n", payload_end):
        raise ProtocolError("encrypted part is not followed by another part or the closing boundary")
    cmatch = re.search(r"charset=([A-Za-z0-9_-]+)", original)
    part = EncryptedPart(
        protocol=protocol,
        length=int(match.group(1)),
        header=body[pos : pos + header_len],
        sealed=body[pos + header_len : payload_end],
        charset=cmatch.group(1) if cmatch else "UTF-8",
    )
    return part, payload_end


def _tls_records_end(body: bytes, pos: int, end: int) -> int:
    """Where the TLS application-data records starting at ``pos`` end: the next part, or ``end``."""
    if body[pos : pos + 1] != bytes([_TLS_APPLICATION_DATA]):
        raise ProtocolError("CredSSP part does not hold a TLS record")
    while pos < end and body[pos] == _TLS_APPLICATION_DATA:
        if pos + _TLS_RECORD_HEADER > end:
            raise ProtocolError("CredSSP part ends inside a TLS record header")
        (length,) = struct.unpack(">H", body[pos + 3 : pos + 5])
        pos += _TLS_RECORD_HEADER + length
        if pos > end:
            raise ProtocolError("CredSSP part ends inside a TLS record")
    return pos
