"""Soak: thousands of kills over dozens of fake nodes with a few per cent of random faults.

The nodes run in a fleet process of their own (``hvjob.testing.fleet``), so file descriptors,
threads and traced memory measured here are the client's alone. Bounded for CI
(``HVJOB_SOAK_CALLS``, default 1,200 measured after 600 of warm-up; ``HVJOB_SOAK_NODES``, default 24); run longer with e.g.
``HVJOB_SOAK_CALLS=20000 pytest -m soak``. It checks behaviour, not speed: every call is accounted
for exactly once (each failing fault the fleet injected costs exactly one failed call of the
expected type, nothing else fails), and descriptors, threads and memory come back.
"""

from __future__ import annotations

import gc
import logging
import os
import statistics
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import SCENARIOS, job_id, options
from hvjob import fanout
from hvjob.testing.fleet import FleetProcess

KILLABLE = job_id(0x100)
#: Calls before memory is compared: they fill bounded caches (pyspnego's NTLM, lxml's names) whose
#: filling would otherwise read as growth; traced and counted like every other call.
WARMUP_CALLS = 600
#: What each failing fault of hvjob.testing.fleet.FAULT_KINDS must end as, for a KillJob.
EXPECTED_TYPE = {"reset": "outcome_unknown", "malformed": "protocol", "corrupt": "protocol", "empty_500": "protocol"}


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _settle(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gc.collect()
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _traced() -> int:
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, __file__)])  # our bookkeeping
    return sum(stat.size for stat in snapshot.statistics("filename"))


@pytest.mark.soak
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts file descriptors through /proc")
def test_soak_kill_with_random_faults(users_file: Path) -> None:
    # The suite captures DEBUG logs and keeps every record; over thousands of calls that store
    # would be the growth measured here, so no records are made during the soak.
    logging.disable(logging.CRITICAL)
    try:
        _soak(users_file)
    finally:
        logging.disable(logging.NOTSET)


def _soak(users_file: Path) -> None:
    calls = int(os.environ.get("HVJOB_SOAK_CALLS", "1200"))
    node_count = int(os.environ.get("HVJOB_SOAK_NODES", "24"))
    fleet = FleetProcess(
        users_file, node_count, scenarios=SCENARIOS, fault_rate=0.03, harmless_rate=0.02, seed=20261125
    )
    try:
        targets = [
            fanout.HostTarget(f"node{i:02d}", f"127.0.0.1:{port}", options(scheme="http"))
            for i, port in enumerate(fleet.ports)
        ]
        warmup = max(10, WARMUP_CALLS // node_count)
        rounds = warmup + max(10, calls // node_count)
        fds_before, threads_before = _open_fds(), threading.active_count()
        # Bookkeeping made before tracing starts: CPython's free lists hand blocks that hvjob freed
        # to new tuples and dict entries, and tracemalloc counts a block where it was first
        # allocated, so a record that grew with every call would read as hvjob's memory.
        column = {t.name: i for i, t in enumerate(targets)}
        seen = [[0] * node_count for _ in range(rounds)]  # results reported, per round and host
        memory = [0] * (rounds - warmup)  # traced bytes after each measured round
        failures: Counter[str] = Counter()
        ok = 0
        tracemalloc.start(1)
        for round_number in range(rounds):
            report = fanout.run("kill", targets, lambda client: client.kill(KILLABLE), concurrency=8)
            assert len(report.results) == node_count and not report.interrupted
            for result in report.results:
                seen[round_number][column[result.host]] += 1
                if result.error is None:
                    assert result.return_value == 0 and result.changed is True
                    ok += 1
                else:
                    failures[result.error.type] += 1
            del report  # this round's results (and their errors) go before measuring
            if round_number >= warmup:
                memory[round_number - warmup] = _traced()
        tracemalloc.stop()
        stats = fleet.stats()
    finally:
        fleet.close()

    total = rounds * node_count
    injected: dict[str, int] = stats["injected"]
    expected: Counter[str] = Counter()
    for kind, count in injected.items():
        if kind in EXPECTED_TYPE:
            expected[EXPECTED_TYPE[kind]] += count
    assert all(count == 1 for row in seen for count in row)  # every call exactly once
    assert ok + sum(failures.values()) == total
    assert sum(expected.values()) > 0 and sum(injected.values()) > sum(expected.values())  # both kinds happened
    assert failures == expected, (failures, injected)  # each failing fault cost one call; nothing else failed
    assert stats["invokes"] == total and stats["unmatched"] == 0
    # Medians over the first and the last tenth of the measured rounds, which steadies the figure.
    tenth = max(3, len(memory) // 10)
    memory_early, memory_late = statistics.median(memory[:tenth]), statistics.median(memory[-tenth:])
    # A leak keeps at least one object per call (16 bytes or more); caches that still fill while
    # new faults come (a few KB over the run, measured) are allowed for, but not a byte per call more.
    measured_calls = (len(memory) - tenth) * node_count
    allowed = memory_early * 1.10 + 8 * measured_calls
    assert memory_late < allowed, (memory_early, memory_late, allowed)
    assert _settle(lambda: threading.active_count() <= threads_before), (threading.active_count(), threads_before)
    assert _settle(lambda: _open_fds() <= fds_before), (_open_fds(), fds_before)
