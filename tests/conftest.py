"""Shared test helpers: fixture paths, the real-capture directory, semantic XML comparison."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
REAL_RESPONSES = ROOT.parent / "shared" / "reference" / "real-responses"

#: A canary password used across the suite; tests/test_secrets.py scans outputs for it.
CANARY_PASSWORD = "Canary-Pa55w0rd-7f3e!"


def real_responses_dir() -> Path:
    if not REAL_RESPONSES.is_dir():
        pytest.skip("../shared/reference/real-responses is absent (cloned without ../shared)")
    return REAL_RESPONSES


_UUID = re.compile(r"uuid:[0-9A-Fa-f-]{36}")


def canonical(xml: bytes | str) -> str:
    """C14N form with MessageIDs normalised, whitespace between elements dropped."""
    data = xml.encode() if isinstance(xml, str) else xml
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    root = etree.fromstring(data, parser)
    text = etree.tostring(root, method="c14n2", strip_text=True).decode()
    return _UUID.sub("uuid:X", text)
