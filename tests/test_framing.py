"""Encrypted-message framing: structural parsing, never a split on the boundary."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hvjob.errors import ProtocolError
from hvjob.wire import framing


def test_frame_unframe_round_trip_with_boundary_inside_ciphertext() -> None:
    sealed = b"abc" + framing.BOUNDARY + b"\r\n\tContent-Type: x\r\n" + framing.BOUNDARY + b"--\r\nxyz"
    body = framing.frame(framing.SPNEGO_PROTOCOL, len(sealed), b"S" * 16, sealed)
    part = framing.unframe(body)
    assert part == framing.EncryptedPart(framing.SPNEGO_PROTOCOL, len(sealed), b"S" * 16, sealed)


def test_layout_matches_ms_wsmv() -> None:
    body = framing.frame(framing.SPNEGO_PROTOCOL, 3, b"\x01" * 16, b"xyz")
    assert body.startswith(
        b"--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n"
        b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=3\r\n"
        b"--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n\x10\x00\x00\x00"
    )
    assert body.endswith(b"xyz--Encrypted Boundary--\r\n")
    assert framing.content_type(framing.SPNEGO_PROTOCOL) == (
        'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"'
    )
    assert framing.protocol_of(framing.content_type(framing.CREDSSP_PROTOCOL)) == framing.CREDSSP_PROTOCOL


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:-30],  # truncated: no closing boundary
        lambda b: b.replace(b"--Encrypted Boundary\r\n", b"--Other\r\n", 1),
        lambda b: b.replace(b"Length=3", b"Len=3"),
        lambda b: b.replace(b"\x10\x00\x00\x00", b"\xff\xff\x00\x00"),
        lambda b: b.replace(b"\tContent-Type: application/octet-stream\r\n", b""),
    ],
)
def test_malformed_frames_are_protocol_errors(mutate: object) -> None:
    body = framing.frame(framing.SPNEGO_PROTOCOL, 3, b"\x01" * 16, b"xyz")
    with pytest.raises(ProtocolError):
        framing.unframe(mutate(body))  # type: ignore[operator]


@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_give_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        framing.unframe(data)
