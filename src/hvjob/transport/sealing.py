"""Message encryption ([MS-WSMV] 2.2.9.1) with an authenticated pyspnego context.

:class:`MessageSealer` seals a SOAP request into a ``multipart/encrypted`` body and unseals a
reply, through the context's public ``wrap_winrm`` / ``unwrap_winrm``; the framing itself is
:mod:`hvjob.wire.framing`. CredSSP seals at most 16 KiB per part (one TLS record), so a larger
message goes as ``multipart/x-multi-encrypted`` with several parts, both ways.
"""

from __future__ import annotations

from typing import Protocol

from hvjob.errors import ProtocolError
from hvjob.transport.boundary import foreign_errors
from hvjob.wire import framing
from hvjob.wire.build import WsmanRequest


class WrapResult(Protocol):
    header: bytes
    data: bytes
    padding_length: int


class WinRMContext(Protocol):
    """What sealing needs of a pyspnego context (``spnego.ContextProxy``)."""

    def wrap_winrm(self, data: bytes) -> WrapResult: ...

    def unwrap_winrm(self, header: bytes, data: bytes) -> bytes: ...


def seal(context: WinRMContext, protocol: str, plaintext: bytes) -> tuple[str, bytes]:
    """``plaintext`` sealed and framed: ``(Content-Type, body)``. No exception translation:
    callers run it inside their boundary (the fake server uses it as it is)."""
    size = framing.CREDSSP_PART_SIZE if protocol == framing.CREDSSP_PROTOCOL else max(len(plaintext), 1)
    parts = []
    for start in range(0, max(len(plaintext), 1), size):
        piece = plaintext[start : start + size]
        wrapped = context.wrap_winrm(piece)
        parts.append(framing.EncryptedPart(protocol, len(piece) + wrapped.padding_length, wrapped.header, wrapped.data))
    return framing.content_type(protocol, parts=len(parts)), framing.frame_parts(parts)


def unseal(context: WinRMContext, body: bytes, *, check_length: bool = True) -> bytes:
    """Every part of an encrypted body unsealed and joined. ``check_length``: each part's
    plaintext must have its OriginalContent Length (NTLM and CredSSP add no padding)."""
    plaintext = []
    for part in framing.unframe_parts(body):
        piece = context.unwrap_winrm(part.header, part.sealed)
        if check_length and len(piece) != part.length:
            raise ProtocolError("decrypted length differs from OriginalContent Length")
        plaintext.append(piece)
    return b"".join(plaintext)


class MessageSealer:
    """Seals requests and unseals replies for one authenticated session.

    ``method`` is the authentication method (``ntlm``, ``kerberos``, ``credssp``); NTLM and
    Kerberos use the SPNEGO protocol name, as Windows and pywinrm do.
    """

    def __init__(self, context: WinRMContext, method: str, host: str) -> None:
        self._context = context
        self.protocol = framing.CREDSSP_PROTOCOL if method == "credssp" else framing.SPNEGO_PROTOCOL
        self._check_length = method != "kerberos"  # Kerberos may count its padding in Length
        self._host = host

    def __repr__(self) -> str:
        return f"MessageSealer(protocol={self.protocol!r})"

    def seal(self, request: WsmanRequest) -> tuple[str, bytes]:
        with foreign_errors("seal", host=self._host, request=request):
            return seal(self._context, self.protocol, request.payload)

    def unseal(self, body: bytes, request: WsmanRequest) -> bytes:
        with foreign_errors("unseal", host=self._host, request=request):
            try:
                return unseal(self._context, body, check_length=self._check_length)
            except ProtocolError as exc:
                raise ProtocolError(exc.message, host=self._host, request_xml=request.payload) from exc
