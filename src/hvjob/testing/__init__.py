"""Test support that ships with hvjob: the simulated cluster, the fake WinRM server, a test PKI.

Users run it as ``hvjob serve --simulate`` (a simulated Hyper-V cluster) or ``hvjob serve``
(scenario replay), or start :class:`SimulatedCluster` / :class:`FakeWinRMServer` from their own
pytest suites (the ``hvjob_cluster`` fixture) to test automation off-Windows.
"""

from __future__ import annotations

import socket
from pathlib import Path

from hvjob.testing.server import FakeWinRMServer, read_users_file
from hvjob.testing.sim import SimulatedCluster
from hvjob.testing.tls import TestPKI, make_pki


def demo_fixtures_dir() -> Path:
    """The demo scenario set shipped inside the package (what ``hvjob serve`` replays by default)."""
    return Path(__file__).resolve().parent / "demo_fixtures"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a server that cannot take port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", 0))
        return int(tcp.getsockname()[1])


__all__ = [
    "FakeWinRMServer",
    "SimulatedCluster",
    "TestPKI",
    "demo_fixtures_dir",
    "free_port",
    "make_pki",
    "read_users_file",
]
