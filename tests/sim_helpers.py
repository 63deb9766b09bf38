"""Typed helpers for the front and simulator tests (mypy --strict clean, unlike conftest's)."""

from __future__ import annotations

from typing import Any

from conftest import CANARY_PASSWORD
from hvjob.transport import ConnectionOptions


def connection_options(**overrides: Any) -> ConnectionOptions:
    """alice's options with short timeouts; ``overrides`` replace any field."""
    base: dict[str, Any] = {
        "username": "alice",
        "password": CANARY_PASSWORD,
        "connect_timeout": 5.0,
        "operation_timeout": 5.0,
        "read_timeout_margin": 2.0,
    }
    base.update(overrides)
    return ConnectionOptions(**base)


# --- the simulated cluster ------------------------------------------------------------------------

import itertools  # noqa: E402
from collections.abc import Iterator, Mapping, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402

from hvjob.jobs import JobClient  # noqa: E402
from hvjob.testing.sim import SimulatedCluster  # noqa: E402
from hvjob.transport import WsmanSession  # noqa: E402


def cluster_options(cluster: SimulatedCluster, **overrides: Any) -> ConnectionOptions:
    """The cluster's account over HTTP with message encryption, short timeouts."""
    base: dict[str, Any] = {"connect_timeout": 5.0, "operation_timeout": 5.0, "read_timeout_margin": 2.0}
    base.update(overrides)
    return cluster.connection_options(**base)


@contextmanager
def job_client(cluster: SimulatedCluster, node: str, **kw: Any) -> Iterator[JobClient]:
    """A JobClient on ``node`` whose waits advance the simulated clock instead of sleeping."""
    with WsmanSession(cluster.url(node), cluster_options(cluster)) as session:
        kw.setdefault("poll_initial", 0.5)
        kw.setdefault("poll_max", 2.0)
        yield JobClient(session, sleep=cluster.advance, **kw)


def pairwise(switches: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """A small covering array: every pair of values of every two switches appears in some row.

    Greedy and deterministic: each new row starts from an uncovered pair and gives every other
    switch the value that covers the most pairs still missing.
    """
    names = list(switches)
    missing = {
        frozenset({(a, va), (b, vb)})
        for a, b in itertools.combinations(names, 2)
        for va in switches[a]
        for vb in switches[b]
    }
    rows: list[dict[str, str]] = []
    while missing:
        first = min(missing, key=sorted)
        row = dict(first)
        for name in names:
            if name in row:
                continue

            def gain(value: str, name: str = name, row: dict[str, str] = row) -> int:
                return sum(frozenset({(name, value), item}) in missing for item in row.items())

            row[name] = max(switches[name], key=gain)
        rows.append(row)
        for x, y in itertools.combinations(names, 2):
            missing.discard(frozenset({(x, row[x]), (y, row[y])}))
    return rows
