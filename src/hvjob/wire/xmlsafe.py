"""Hardened parsing of untrusted XML from the network.

No DTD is loaded, no entity is resolved, nothing is fetched, and a document with a DOCTYPE is
refused outright (SOAP 1.2 part 1, 5: an envelope must not contain a DTD). Size is capped before
parsing. Every failure is a ProtocolError, never an lxml exception.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from lxml import etree

from hvjob.errors import ProtocolError, ResponseTooLarge

#: Default cap on one response body in bytes. We announce MaxEnvelopeSize 512000; an encrypted,
#: UTF-16 reply of that size stays well under 4 MiB. Configurable per session.
DEFAULT_MAX_BYTES = 4 * 1024 * 1024

_local = threading.local()


def _parser(encoding: str | None) -> etree.XMLParser:
    """This thread's parser for ``encoding`` (lxml parsers are not thread-safe; creating one per
    response cost more than parsing a short reply)."""
    parsers: dict[str | None, etree.XMLParser] | None = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    key = encoding.lower() if encoding else None
    parser = parsers.get(key)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            recover=False,
            encoding=key,
        )
        if len(parsers) < 16:  # the charset comes from the network: keep a few, not one per spelling
            parsers[key] = parser
    return parser


def parse_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, encoding: str | None = None) -> etree._Element:
    """Parse ``data`` into an element tree or raise ProtocolError.

    ``encoding`` is the HTTP charset, used only when the body carries no BOM and no XML
    declaration; bytes invalid in the declared or detected encoding are a ProtocolError.
    """
    if not isinstance(data, bytes):
        raise ProtocolError("response body is not bytes")
    if len(data) > max_bytes:
        raise ResponseTooLarge(f"response body of {len(data)} bytes exceeds the limit of {max_bytes} bytes")
    if not data.strip():
        raise ProtocolError("response body is empty")
    try:
        parser = _parser(encoding if encoding and not _declares_encoding(data) else None)
    except LookupError as exc:
        raise ProtocolError(f"response charset {encoding!r} is unknown") from exc
    try:
        root = etree.fromstring(data, parser=parser)
    except (etree.XMLSyntaxError, ValueError, LookupError) as exc:
        raise ProtocolError(f"response is not well-formed XML: {_first_line(exc)}") from exc
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise ProtocolError("response carries a DTD, which SOAP forbids; refused")
    return root


def _declares_encoding(data: bytes) -> bool:
    head = data[:4]
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True
    return data.lstrip()[:5] == b"<?xml" and b"encoding" in data[:100]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def children(element: etree._Element) -> Iterator[etree._Element]:
    """Child elements, skipping anything else lxml may hold (comments, PIs)."""
    return element.iterchildren(etree.Element)


def local(tag: object) -> str:
    """Local name of an element tag (``{ns}name`` -> ``name``); '' for comments and the like."""
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def ns_of(tag: object) -> str:
    if not isinstance(tag, str) or not tag.startswith("{"):
        return ""
    return tag[1:].split("}", 1)[0]


def text_of(element: etree._Element | None) -> str | None:
    """Stripped text content, or None for a missing element. Pretty-printed captures pad values."""
    if element is None:
        return None
    return "".join(str(t) for t in element.itertext()).strip()
