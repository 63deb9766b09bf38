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


def _tls_record(fragment: bytes) -> bytes:
    """A TLS 1.2 application-data record around ``fragment`` (what a CredSSP part carries)."""
    return bytes([0x17, 0x03, 0x03]) + len(fragment).to_bytes(2, "big") + fragment


def test_credssp_parts_are_found_by_their_tls_record_lengths_not_by_the_boundary() -> None:
    # Each part's sealed payload holds the boundary and a whole fake part header: only the TLS
    # record lengths say where a part ends.
    trap = framing.BOUNDARY + b"\r\n\tContent-Type: " + framing.CREDSSP_PROTOCOL.encode() + b"\r\n" + framing.BOUNDARY
    records = [_tls_record(b"A" * 20 + trap + bytes([n]) * 30) for n in range(3)]
    parts = [
        framing.EncryptedPart(framing.CREDSSP_PROTOCOL, 100 + n, rec[:29], rec[29:]) for n, rec in enumerate(records)
    ]
    body = framing.frame_parts(parts)
    assert framing.unframe_parts(body) == parts
    assert framing.content_type(framing.CREDSSP_PROTOCOL, parts=3).startswith("multipart/x-multi-encrypted;")
    assert framing.is_encrypted(framing.content_type(framing.CREDSSP_PROTOCOL, parts=3))
    with pytest.raises(ProtocolError, match="3 parts"):
        framing.unframe(body)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (
            lambda b: b.replace(bytes([0x17, 0x03, 0x03, 0x00, 0x6F]), bytes([0x17, 0x03, 0x03, 0x00, 0x60]), 1),
            "followed",
        ),
        (
            lambda b: b.replace(bytes([0x17, 0x03, 0x03, 0x00, 0x6F]), bytes([0x17, 0x03, 0x03, 0x7F, 0xFF]), 1),
            "inside",
        ),
        (lambda b: b.replace(bytes([0x17]), bytes([0x16]), 1), "TLS record"),
    ],
)
def test_credssp_record_lengths_that_do_not_add_up_are_protocol_errors(mutate: object, match: str) -> None:
    records = [_tls_record(bytes([n]) * 111) for n in range(2)]
    body = framing.frame_parts(
        [framing.EncryptedPart(framing.CREDSSP_PROTOCOL, 100, rec[:29], rec[29:]) for rec in records]
    )
    with pytest.raises(ProtocolError, match=match):
        framing.unframe_parts(mutate(body))  # type: ignore[operator]


def test_a_spnego_body_is_one_part_whatever_it_contains() -> None:
    sealed = b"x" + framing.frame(framing.SPNEGO_PROTOCOL, 1, b"S" * 16, b"y")[:-2] + b"z"
    body = framing.frame(framing.SPNEGO_PROTOCOL, len(sealed), b"S" * 16, sealed)
    assert framing.unframe_parts(body) == [
        framing.EncryptedPart(framing.SPNEGO_PROTOCOL, len(sealed), b"S" * 16, sealed)
    ]


@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=5))
def test_credssp_frames_round_trip(fragments: list[bytes]) -> None:
    records = [_tls_record(fragment) for fragment in fragments]
    parts = [
        framing.EncryptedPart(framing.CREDSSP_PROTOCOL, len(f), rec[:5], rec[5:])
        for f, rec in zip(fragments, records, strict=True)
    ]
    assert framing.unframe_parts(framing.frame_parts(parts)) == parts
