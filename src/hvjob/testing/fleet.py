"""A fleet of fake WinRM nodes in a process of its own, for benchmarks and soak tests.

Keeping the fleet out of the client's process means the client's memory, threads, file
descriptors and CPU can be measured alone. Run it as::

    python -m hvjob.testing.fleet --nodes 100 --users users.txt --latency-ms 100

It prints one JSON line, ``{"ports": [...], "host": "127.0.0.1"}``, then reads commands from
standard input, one per line: ``stats`` prints ``{"requests", "connections", "auth_handshakes",
"invokes", "unmatched", "injected": {kind: count}}`` for the whole fleet; ``quit`` (or end of input)
stops it. With ``--fault-rate``, each dispatched request draws a random fault (seeded by
``--seed``) from ``FAULT_KINDS``, and the fleet counts what it injected.

With ``--simulate [CLUSTER.yml]`` the nodes are one simulated cluster (the default cluster with
``--nodes`` nodes, each running its own export job, or the file's) in this one process, sharing
one accept thread; the first line adds ``"cluster"`` and ``"nodes": {NODE: URL}``, ``invokes``
counts the methods the providers executed, and three more commands read and drive the ground
truth: ``jobs`` and ``log`` print one JSON line each, ``advance SECONDS`` moves the clock.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hvjob.scenario import RequestPattern, load_scenarios
from hvjob.testing import demo_fixtures_dir
from hvjob.testing.server import FakeWinRMServer

#: Random faults: name -> injection. Each costs the client exactly one failed call (docs/fixtures.md).
FAULT_KINDS: dict[str, dict[str, Any]] = {
    "reset": {"close": "mid_response"},
    "malformed": {"body": "malformed"},
    "corrupt": {"corrupt": "payload"},
    "empty_500": {"status": 500, "raw_body": ""},
}
#: Faults that slow a call down or drop the connection after a full answer; the call still succeeds.
HARMLESS_KINDS: dict[str, dict[str, Any]] = {
    "slow": {"latency_ms": 50},
    "close_after": {"close": "after_response"},
}


class RandomFaults:
    """A fault plan: with probability ``rate`` a failing fault, with ``harmless_rate`` a harmless one."""

    def __init__(self, rate: float, harmless_rate: float, seed: int) -> None:
        self.rate = rate
        self.harmless_rate = harmless_rate
        self._random = random.Random(seed)  # noqa: S311 (reproducible fault choice, not security)
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()

    def __call__(self, pattern: RequestPattern) -> dict[str, Any]:
        with self._lock:
            roll = self._random.random()
            if roll < self.rate:
                kind = self._random.choice(sorted(FAULT_KINDS))
                self.injected[kind] += 1
                return dict(FAULT_KINDS[kind])
            if roll < self.rate + self.harmless_rate:
                kind = self._random.choice(sorted(HARMLESS_KINDS))
                self.injected[kind] += 1
                return dict(HARMLESS_KINDS[kind])
            return {}


class FleetProcess:
    """Start ``python -m hvjob.testing.fleet`` and talk to it; use as a context manager.

    ``flags`` become its options (``latency_ms=100`` is ``--latency-ms 100``).
    """

    def __init__(self, users_file: Path | str, nodes: int, **flags: object) -> None:
        argv = [sys.executable, "-m", "hvjob.testing.fleet", "--nodes", str(nodes), "--users", str(users_file)]
        for name, value in flags.items():
            if value is True:
                argv.append(f"--{name.replace('_', '-')}")  # a flag, e.g. simulate=True
            elif value is not None and value is not False:
                argv += [f"--{name.replace('_', '-')}", str(value)]
        self.process = subprocess.Popen(  # noqa: S603 (this interpreter, this module, numeric/path options)
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=30)
            raise RuntimeError(f"the fleet did not start (exit {self.process.returncode})")
        started = json.loads(line)
        self.ports: list[int] = started["ports"]
        self.nodes: dict[str, str] = started.get("nodes", {})  # simulated: node -> URL

    def command(self, text: str) -> Any:
        """Send one command line; its one-line JSON answer."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stats(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.command("stats")
        return answer

    def jobs(self) -> list[dict[str, Any]]:
        """The simulated cluster's ground truth (``--simulate`` only)."""
        answer: list[dict[str, Any]] = self.command("jobs")["jobs"]
        return answer

    def log(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self.command("log")["log"]
        return answer

    def advance(self, seconds: float) -> None:
        self.command(f"advance {seconds}")

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> FleetProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hvjob.testing.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--users", required=True, help="DOMAIN:USER:PASSWORD lines")
    parser.add_argument("--scenarios", help="scenario directory (default: the demo set)")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--harmless-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--simulate", nargs="?", const="", default=None, metavar="CLUSTER.yml")
    args = parser.parse_args(argv)

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a listening socket and connections per node
    if args.simulate is not None:
        if args.fault_rate or args.harmless_rate or args.scenarios:
            parser.error("--simulate takes no --scenarios or random faults (inject them through /_hvjob/faults)")
        return _simulated(args)
    plan = (
        RandomFaults(args.fault_rate, args.harmless_rate, args.seed) if args.fault_rate or args.harmless_rate else None
    )
    scenarios = load_scenarios(Path(args.scenarios) if args.scenarios else demo_fixtures_dir())  # once, not per node
    servers = [
        FakeWinRMServer(
            scenarios, users_file=args.users, latency_ms=args.latency_ms, fault_plan=plan, poll_interval=0.5
        )
        for _ in range(args.nodes)
    ]
    for server in servers:
        server.start()
    print(json.dumps({"host": "127.0.0.1", "ports": [s.port for s in servers]}), flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                stats = {
                    "requests": sum(s.stats.requests for s in servers),
                    "connections": sum(s.stats.connections for s in servers),
                    "auth_handshakes": sum(s.stats.auth_handshakes for s in servers),
                    "invokes": sum(s.stats.invokes for s in servers),
                    "unmatched": sum(len(s.stats.unmatched) for s in servers),
                    "injected": dict(plan.injected) if plan else {},
                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                }
                print(json.dumps(stats), flush=True)
            elif command == "quit":
                break
    finally:
        with ThreadPoolExecutor(max_workers=64) as pool:  # each stop waits up to a poll interval
            list(pool.map(lambda server: server.stop(), servers))
    return 0


def _simulated(args: argparse.Namespace) -> int:
    from hvjob.testing.sim import SimulatedCluster

    cluster = SimulatedCluster(
        args.simulate or None,
        nodes=None if args.simulate else args.nodes,
        users_file=args.users,
        latency_ms=args.latency_ms,
    )
    with cluster:
        ports = [front.port for front in cluster.fronts]
        print(
            json.dumps({"host": "127.0.0.1", "ports": ports, "cluster": cluster.name, "nodes": cluster.urls}),
            flush=True,
        )
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "stats":
                fronts = cluster.fronts
                stats = {
                    "requests": sum(f.stats.requests for f in fronts),
                    "connections": sum(f.stats.connections for f in fronts),
                    "auth_handshakes": sum(f.stats.auth_handshakes for f in fronts),
                    "invokes": len(cluster.log()),
                    "unmatched": 0,
                    "injected": {},
                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                }
                print(json.dumps(stats), flush=True)
            elif command == "jobs":
                print(json.dumps({"jobs": cluster.jobs()}), flush=True)
            elif command == "log":
                print(json.dumps({"log": cluster.log()}), flush=True)
            elif command == "advance":
                cluster.advance(float(argument or 0))
                print(json.dumps({"time": cluster.clock.now()}), flush=True)
            elif command == "quit":
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
