"""Test support that ships with hvjob: the fake WinRM server, its demo fixtures, a test PKI.

Users run it as ``hvjob serve`` or start :class:`FakeWinRMServer` from their own pytest suites to
test automation off-Windows.
"""

from __future__ import annotations

from pathlib import Path

from hvjob.testing.server import FakeWinRMServer, read_users_file
from hvjob.testing.tls import TestPKI, make_pki


def demo_fixtures_dir() -> Path:
    """The demo scenario set shipped inside the package (what ``hvjob serve`` replays by default)."""
    return Path(__file__).resolve().parent / "demo_fixtures"


__all__ = ["FakeWinRMServer", "TestPKI", "demo_fixtures_dir", "make_pki", "read_users_file"]
