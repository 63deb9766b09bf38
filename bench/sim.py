"""Measure the simulated cluster: requests per second one node answers, and memory per node.

    python bench/sim.py --json [--seconds 3] [--runs 3] [--clients 4] [--nodes 1000]

Prints one JSON object (docs/performance.md, "The simulated cluster"). The cluster runs in a fleet
process of its own (``python -m hvjob.testing.fleet --simulate``), so its CPU and memory are read
from /proc for that process alone; the clients are hvjob sessions (NTLM, message encryption) in
this process, on the same machine's cores. Timings are measured here, never asserted by tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hvjob.fanout import HostTarget, run
from hvjob.jobs import JobClient, JobState
from hvjob.testing.fleet import FleetProcess
from hvjob.testing.sim import default
from hvjob.transport import ConnectionOptions, WsmanSession

USER = "bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _operations(client: JobClient) -> dict[str, Callable[[], object]]:
    return {
        "get": lambda: client.get_job(default.RUNNING),
        "invoke": lambda: client.invoke(default.FAILED, "GetErrorEx", []),  # a method that changes nothing
        "enumerate": lambda: list(client.iter_jobs([JobState.RUNNING])),
    }


def node_rate(
    fleet: FleetProcess, options: ConnectionOptions, operation: str, clients: int, seconds: float
) -> dict[str, float]:
    """Requests one simulated node answered in ``seconds`` from ``clients`` keep-alive sessions."""
    url = next(iter(fleet.nodes.values()))
    sessions = [WsmanSession(url, options) for _ in range(clients)]
    calls = [_operations(JobClient(session))[operation] for session in sessions]
    for call in calls:
        call()  # authenticate outside the timed window
    counts = [0] * clients
    start = threading.Event()
    deadline = [0.0]

    def work(index: int) -> None:
        start.wait()
        while time.monotonic() < deadline[0]:
            calls[index]()
            counts[index] += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    cpu_before = _cpu_seconds(fleet.process.pid)
    began = time.monotonic()
    deadline[0] = began + seconds
    start.set()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    cpu = _cpu_seconds(fleet.process.pid) - cpu_before
    for session in sessions:
        session.close()
    total = sum(counts)
    # An enumeration of the default node is one Enumerate (optimized, all items in the reply).
    return {"requests_per_s": total / wall, "server_cpu_ms_per_request": 1000 * cpu / max(total, 1)}


def rates(users: Path, password: str, seconds: float, runs: int, clients: int) -> dict[str, Any]:
    options = ConnectionOptions(username=USER, password=password, scheme="http")
    result: dict[str, Any] = {}
    with FleetProcess(users, 1, simulate=True) as fleet:
        for operation in ("get", "invoke", "enumerate"):
            for concurrency in (1, clients):
                samples = [node_rate(fleet, options, operation, concurrency, seconds) for _ in range(runs)]
                key = f"{operation}_{concurrency}_client{'s' if concurrency > 1 else ''}"
                result[key] = {
                    "requests_per_s": round(statistics.median(s["requests_per_s"] for s in samples), 1),
                    "server_cpu_ms_per_request": round(
                        statistics.median(s["server_cpu_ms_per_request"] for s in samples), 3
                    ),
                    "all_requests_per_s": [round(s["requests_per_s"], 1) for s in samples],
                }
    return result


def memory(users: Path, password: str, nodes: int) -> dict[str, Any]:
    """Resident memory of a one-node and an N-node simulated cluster, idle and after a fan-out."""
    with FleetProcess(users, 1, simulate=True) as one:
        time.sleep(0.5)  # let start-up allocations settle before reading RSS (not a test; a measurement)
        base = _rss_mb(one.process.pid)
    started = time.monotonic()
    with FleetProcess(users, nodes, simulate=True) as fleet:
        start_s = time.monotonic() - started
        idle = _rss_mb(fleet.process.pid)
        options = ConnectionOptions(username=USER, password=password, scheme="http", operation_timeout=60)
        targets = [HostTarget(node, url, options) for node, url in fleet.nodes.items()]
        began = time.monotonic()
        report = run("list", targets, lambda c: c.list([JobState.RUNNING]), concurrency=256)
        fanout_s = time.monotonic() - began
        ok = report.summary["ok"]
        busy = _rss_mb(fleet.process.pid)
        truth = len(fleet.jobs())
    return {
        "nodes": nodes,
        "start_s": round(start_s, 2),
        "rss_one_node_mb": round(base, 1),
        "rss_idle_mb": round(idle, 1),
        "rss_after_fanout_mb": round(busy, 1),
        "idle_kb_per_node": round((idle - base) * 1024 / (nodes - 1), 1),
        "after_fanout_kb_per_node": round((busy - base) * 1024 / (nodes - 1), 1),
        "fanout_list_wall_s": round(fanout_s, 2),
        "fanout_ok": ok,
        "jobs_in_ground_truth": truth,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object (the default prints it indented)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one timed run")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per figure (median reported)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent sessions for the loaded figure")
    parser.add_argument("--nodes", type=int, default=1000, help="nodes of the memory measurement")
    args = parser.parse_args(argv)
    password = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory() as work:
        users = Path(work) / "users.txt"
        users.write_text(f":{USER}:{password}\n")
        users.chmod(0o600)
        out = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "node_rate": rates(users, password, args.seconds, args.runs, args.clients),
            "memory": memory(users, password, args.nodes),
        }
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
