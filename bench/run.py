"""hvjob benchmarks against fake WinRM fleets: per-call overhead and fan-out.

    pip install '.[bench]' && python bench/run.py --json [--big]

Three clients side by side: hvjob, pywinrm (the baseline) and pypsrp.

Prints one JSON object (see docs/performance.md). The fake nodes run in fleet processes of their
own (hvjob.testing.fleet); each fan-out measurement runs in a child process of its own (with the
worker processes hvjob forks), so its CPU and peak RSS are the client's alone. Timings are
measured here and never asserted by the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import operator
import os
import platform
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hvjob.testing.fleet import FleetProcess

JOB = "5F3C2A10-7B4D-4E8A-9C61-000000000001"  # the demo fixture's job: Running, stop/kill succeed
#: Fake nodes per fleet process. One Python process serving 1,000 nodes (a thread each, plus one per
#: connection) spends most of its CPU passing the GIL between them once the client drives it hard:
#: measured at 1,000 nodes, 33.6 s of fleet CPU for a fan-out that cost it 8.5 s at a slower pace.
#: Shards of 250 keep the fleet from being what is measured.
FLEET_SHARD = 250


class Fleet(contextlib.ExitStack):
    """``nodes`` fake nodes in as many fleet processes as shards of ``FLEET_SHARD`` need."""

    def __init__(self, users: Path, nodes: int, **flags: object) -> None:
        super().__init__()
        sizes = [min(FLEET_SHARD, nodes - start) for start in range(0, nodes, FLEET_SHARD)]
        try:
            self.shards = [self.enter_context(FleetProcess(users, size, **flags)) for size in sizes]
        except BaseException:
            self.close()
            raise
        self.ports = [port for shard in self.shards for port in shard.ports]

    def stats(self) -> dict[str, Any]:
        per_shard = [shard.stats() for shard in self.shards]
        return {key: sum(stats[key] for stats in per_shard) for key in ("requests", "connections", "invokes")}

    def __enter__(self) -> Fleet:
        return self


URI = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/HyperVCluster/v2/Msvm_CollectionReferencePointExportJob"
USER = "bench"


# --- per-call: three clients over one reused NTLM-encrypted session each -----------------------


def _hvjob_caller(port: int, password: str) -> tuple[Any, Any]:
    from hvjob.jobs import JobClient
    from hvjob.transport import ConnectionOptions, WsmanSession

    session = WsmanSession(f"127.0.0.1:{port}", ConnectionOptions(username=USER, password=password, scheme="http"))
    client = JobClient(session)

    def call() -> None:
        out = client.invoke(JOB, "KillJob", [("DeleteOnKill", False)])  # builds, sends, checks, parses
        assert out.return_value == 0

    return call, session.close


def _plain_pywinrm(port: int, password: str) -> Any:
    """pywinrm's own transport to a fleet node: NTLM with message encryption over HTTP."""
    import winrm.transport

    return winrm.transport.Transport(
        endpoint=f"http://127.0.0.1:{port}/wsman",
        username=USER,
        password=password,
        auth_method="ntlm",
        message_encryption="always",
        server_cert_validation="ignore",
    )


def _pywinrm_caller(port: int, password: str) -> tuple[Any, Any]:
    from hvjob.wire import build

    envelope = build.build_invoke(build.HeaderOptions(), URI, "KillJob", {"DeleteOnKill": False}, {"InstanceID": JOB})
    transport = _plain_pywinrm(port, password)
    payload = envelope.payload

    def call() -> None:
        reply = transport.send_message(payload)  # a pre-built envelope; the reply is not parsed
        assert b"ReturnValue>0<" in reply

    return call, transport.close_session


def _pypsrp_caller(port: int, password: str) -> tuple[Any, Any]:
    import xml.etree.ElementTree as ET

    from pypsrp.wsman import SelectorSet, WSMan

    wsman = WSMan("127.0.0.1", port=port, username=USER, password=password, ssl=False, auth="ntlm")
    selectors = SelectorSet()
    selectors.add_option("InstanceID", JOB)

    def call() -> None:
        body = ET.Element(f"{{{URI}}}KillJob_INPUT")
        ET.SubElement(body, f"{{{URI}}}DeleteOnKill").text = "false"
        reply = wsman.invoke(f"{URI}/KillJob", URI, body, selector_set=selectors)
        assert reply.find(f".//{{{URI}}}ReturnValue").text == "0"  # type: ignore[union-attr]

    return call, wsman.close


def per_call(users: Path, password: str, calls: int, repeats: int) -> dict[str, Any]:
    with FleetProcess(users, 1) as fleet:
        port = fleet.ports[0]
        makers = {"hvjob": _hvjob_caller, "pywinrm_bare": _pywinrm_caller, "pypsrp": _pypsrp_caller}
        callers = {name: make(port, password) for name, make in makers.items()}
        for call, _ in callers.values():  # authenticate and warm up outside the timing
            for _ in range(20):
                call()
        rates: dict[str, list[float]] = {name: [] for name in callers}
        for _ in range(repeats):  # interleaved, so drift hits every client alike
            for name, (call, _) in callers.items():
                start = time.perf_counter()
                for _ in range(calls):
                    call()
                rates[name].append(calls / (time.perf_counter() - start))
        for _, close in callers.values():
            close()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "hvjob_per_s": round(medians["hvjob"], 1),
        "pywinrm_bare_per_s": round(medians["pywinrm_bare"], 1),
        "pypsrp_per_s": round(medians["pypsrp"], 1),
        "hvjob_vs_pywinrm_bare": round(medians["hvjob"] / medians["pywinrm_bare"], 3),
        "hvjob_vs_pypsrp": round(medians["hvjob"] / medians["pypsrp"], 3),
        "calls_per_run": calls,
        "runs": repeats,
        "all_runs_per_s": {name: [round(v, 1) for v in values] for name, values in rates.items()},
    }


# --- fresh sessions: exchanges per operation and client CPU per fresh stop ------------------------


def _hvjob_fresh(port: int, password: str, operation: str) -> bool:
    from hvjob.jobs import JobClient
    from hvjob.transport import ConnectionOptions, WsmanSession

    options = ConnectionOptions(username=USER, password=password, scheme="http")
    with WsmanSession(f"127.0.0.1:{port}", options) as session:
        client = JobClient(session)
        result = client.stop(JOB) if operation == "stop" else client.kill(JOB)
    return result.ok and bool(result.changed)


def _pywinrm_fresh(port: int, password: str, operation: str) -> bool:
    """The same work through plain pywinrm: pre-built envelopes (a Get, then RequestStateChange; or KillJob)."""
    from hvjob.wire import build

    transport = _plain_pywinrm(port, password)
    try:
        if operation == "stop":
            transport.send_message(build.build_get(build.HeaderOptions(), URI, {"InstanceID": JOB}).payload)
            method, arguments = "RequestStateChange", {"RequestedState": 5}
        else:
            method, arguments = "KillJob", {"DeleteOnKill": False}
        invoke = build.build_invoke(build.HeaderOptions(), URI, method, arguments, {"InstanceID": JOB}).payload
        return b"ReturnValue>0<" in transport.send_message(invoke)
    finally:
        transport.close_session()


def _pypsrp_fresh(port: int, password: str, operation: str) -> bool:
    import xml.etree.ElementTree as ET

    from pypsrp.wsman import SelectorSet, WSMan

    selectors = SelectorSet()
    selectors.add_option("InstanceID", JOB)
    with WSMan("127.0.0.1", port=port, username=USER, password=password, ssl=False, auth="ntlm") as wsman:
        if operation == "stop":
            wsman.get(URI, selector_set=selectors)
            body = ET.Element(f"{{{URI}}}RequestStateChange_INPUT")
            ET.SubElement(body, f"{{{URI}}}RequestedState").text = "5"
            method = "RequestStateChange"
        else:
            body = ET.Element(f"{{{URI}}}KillJob_INPUT")
            ET.SubElement(body, f"{{{URI}}}DeleteOnKill").text = "false"
            method = "KillJob"
        reply = wsman.invoke(f"{URI}/{method}", URI, body, selector_set=selectors)
    return reply.find(f".//{{{URI}}}ReturnValue").text == "0"  # type: ignore[union-attr]


FRESH_CLIENTS = {"hvjob": _hvjob_fresh, "pywinrm": _pywinrm_fresh, "pypsrp": _pypsrp_fresh}


def fresh_sessions(users: Path, password: str, samples: int, repeats: int) -> dict[str, Any]:
    """Each client does one operation per fresh session, one fleet node each (so every ``stop``
    finds the job running): HTTP exchanges per operation as the fleet counts them, and the client's
    CPU per fresh ``stop`` (rusage of this process; the fleet runs in its own), interleaved medians."""
    exchanges: dict[str, dict[str, float]] = {}
    for operation in ("kill", "stop"):
        for name, fresh in FRESH_CLIENTS.items():
            with FleetProcess(users, 3) as fleet:
                assert all(fresh(port, password, operation) for port in fleet.ports), (name, operation)
                exchanges.setdefault(name, {})[operation] = fleet.stats()["requests"] / len(fleet.ports)
    cpu_ms: dict[str, list[float]] = {name: [] for name in FRESH_CLIENTS}
    for _ in range(repeats):
        for name, fresh in FRESH_CLIENTS.items():
            with FleetProcess(users, samples) as fleet:
                fresh(fleet.ports[0], password, "stop")  # imports and first-use costs outside the timing
                before = resource.getrusage(resource.RUSAGE_SELF)
                ok = sum(fresh(port, password, "stop") for port in fleet.ports[1:])
                after = resource.getrusage(resource.RUSAGE_SELF)
            assert ok == samples - 1, name
            used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            cpu_ms[name].append(used * 1000 / (samples - 1))
    medians = {name: statistics.median(values) for name, values in cpu_ms.items()}
    return {
        "exchanges": exchanges,
        "cpu_ms_per_stop": {name: round(value, 3) for name, value in medians.items()},
        "cpu_ms_per_stop_all_runs": {name: [round(v, 3) for v in values] for name, values in cpu_ms.items()},
        "hvjob_cpu_vs_pywinrm": round(medians["hvjob"] / medians["pywinrm"], 3),
        "hvjob_cpu_vs_pypsrp": round(medians["hvjob"] / medians["pypsrp"], 3),
        "sessions_per_run": samples - 1,
        "runs": repeats,
    }


# --- fan-out: each measurement in a child process ------------------------------------------------


def _child(mode: str, ports: list[int], concurrency: int, password: str) -> dict[str, Any]:
    """Run in a fresh process: one fan-out over ``ports``; wall time, CPU and peak RSS of the client.

    Modes: ``hvjob-stop`` and ``hvjob-kill`` (worker processes as hvjob chooses them),
    ``hvjob-stop-threads`` (one process), ``pywinrm-stop`` (a thread pool over plain pywinrm).
    """
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import winrm.transport  # noqa: F401 (imported before the clock starts)

    from hvjob import fanout
    from hvjob.transport import ConnectionOptions
    from hvjob.wire import build

    def cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    cpu_before = cpu()
    start = time.perf_counter()
    worker_rss: list[float] = []
    if mode.startswith("hvjob-"):
        options = ConnectionOptions(username=USER, password=password, scheme="http")
        targets = [fanout.HostTarget(f"n{p}", f"127.0.0.1:{p}", options) for p in ports]
        processes = 1 if mode.endswith("-threads") else None
        operation = operator.methodcaller("stop" if mode.startswith("hvjob-stop") else "kill", JOB)
        report = fanout.run("bench", targets, operation, concurrency=concurrency, processes=processes)
        ok = sum(1 for r in report.results if r.ok)
        worker_rss = [w.peak_rss_mb or 0.0 for w in report.workers]
    else:  # the same work through plain pywinrm in a thread pool: a Get, then RequestStateChange
        get = build.build_get(build.HeaderOptions(), URI, {"InstanceID": JOB}).payload
        rsc = build.build_invoke(
            build.HeaderOptions(), URI, "RequestStateChange", {"RequestedState": 5}, {"InstanceID": JOB}
        ).payload

        def one(port: int) -> bool:
            transport = _plain_pywinrm(port, password)
            try:
                transport.send_message(get)
                return b"ReturnValue>0<" in transport.send_message(rsc)
            finally:
                transport.close_session()

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            ok = sum(pool.map(one, ports))
    wall = time.perf_counter() - start
    own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "wall_s": wall,
        "cpu_s": cpu() - cpu_before,
        "ok": ok,
        "processes": max(1, len(worker_rss)),
        # forked workers share their parent's pages, so the sum is an upper bound
        "peak_rss_mb": own_rss + sum(worker_rss),
    }


def _run_child(mode: str, ports: list[int], concurrency: int, password: str) -> dict[str, Any]:
    env = {**os.environ, "HVJOB_BENCH_PASSWORD": password}
    argv = [sys.executable, __file__, "--child", mode, "--concurrency", str(concurrency)]
    argv += ["--ports", ",".join(map(str, ports))]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _interleaved(
    users: Path, password: str, runs: dict[str, tuple[int, int]], latency_ms: float, repeats: int
) -> dict[str, dict[str, Any]]:
    """``runs`` maps a name to (nodes, concurrency) for its mode (the name up to any ``@``).

    Every repeat runs each in turn, each against a fresh fleet (a stopped job stays stopped), so
    that drift in the machine's speed hits them alike. Returns each one's median run by wall time,
    with every run's wall time and the HTTP exchanges per node the fleet counted.
    """
    done: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (nodes, concurrency) in runs.items():
            with Fleet(users, nodes, latency_ms=latency_ms) as fleet:
                run = _run_child(name.split("@")[0], fleet.ports, concurrency, password)
                run["exchanges_per_node"] = fleet.stats()["requests"] / nodes  # auth legs included
            done[name].append(run)
    medians = {}
    for name, results in done.items():
        results.sort(key=lambda r: r["wall_s"])
        medians[name] = dict(results[len(results) // 2], all_wall_s=[round(r["wall_s"], 3) for r in results])
    return medians


def fan_out(
    users: Path, password: str, nodes: int, latency_ms: float, concurrency: int, repeats: int
) -> dict[str, Any]:
    modes = ("hvjob-stop", "hvjob-stop-threads", "pywinrm-stop")
    runs = _interleaved(users, password, dict.fromkeys(modes, (nodes, concurrency)), latency_ms, repeats)
    hv, threads, pw = (runs[mode] for mode in modes)
    exchanges = hv["exchanges_per_node"]
    ideal = math.ceil(nodes / concurrency) * exchanges * latency_ms / 1000
    return {
        "nodes": nodes,
        "latency_ms": latency_ms,
        "concurrency": concurrency,
        "processes": hv["processes"],
        "exchanges_per_node": exchanges,
        "wall_s": round(hv["wall_s"], 3),
        "ideal_s": round(ideal, 3),
        "wall_vs_ideal": round(hv["wall_s"] / ideal, 3),
        "all_wall_s": hv["all_wall_s"],
        "threads_only_wall_s": round(threads["wall_s"], 3),
        "threads_only_all_wall_s": threads["all_wall_s"],
        "pywinrm_pool_wall_s": round(pw["wall_s"], 3),
        "pywinrm_pool_all_wall_s": pw["all_wall_s"],
        "wall_vs_pywinrm_pool": round(hv["wall_s"] / pw["wall_s"], 3),
        "pywinrm_pool_exchanges_per_node": pw["exchanges_per_node"],
        "client_cpu_s": round(hv["cpu_s"], 3),
        "threads_only_cpu_s": round(threads["cpu_s"], 3),
        "pywinrm_pool_cpu_s": round(pw["cpu_s"], 3),
        "peak_rss_mb": round(hv["peak_rss_mb"], 1),
        "threads_only_peak_rss_mb": round(threads["peak_rss_mb"], 1),
        "pywinrm_pool_peak_rss_mb": round(pw["peak_rss_mb"], 1),
        "ok": hv["ok"],
        "threads_only_ok": threads["ok"],
        "pywinrm_ok": pw["ok"],
    }


def kill_scaling(users: Path, password: str, latency_ms: float, repeats: int) -> dict[str, Any]:
    runs = _interleaved(users, password, {"hvjob-kill@1": (1, 1), "hvjob-kill@50": (50, 50)}, latency_ms, repeats)
    one, fifty = runs["hvjob-kill@1"], runs["hvjob-kill@50"]
    return {
        "latency_ms": latency_ms,
        "one_node_s": round(one["wall_s"], 3),
        "fifty_nodes_s": round(fifty["wall_s"], 3),
        "fifty_nodes_processes": fifty["processes"],
        "ratio": round(fifty["wall_s"] / one["wall_s"], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the JSON object only")
    parser.add_argument("--big", action="store_true", help="also 1,000 nodes (reported, not gated)")
    parser.add_argument("--calls", type=int, default=300, help="KillJob calls per timed run")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved runs per client")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--nodes", default="1,10,50,100", help="fan-out sizes (comma-separated)")
    parser.add_argument("--fanout-repeats", type=int, default=5, help="interleaved runs per fan-out figure (median)")
    parser.add_argument("--fresh-sessions", type=int, default=50, help="fresh sessions per client per CPU run")
    parser.add_argument("--big-repeats", type=int, default=1, help="interleaved runs of the 1,000-node figure")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=32, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        ports = [int(p) for p in args.ports.split(",")]
        print(json.dumps(_child(args.child, ports, args.concurrency, os.environ["HVJOB_BENCH_PASSWORD"])))
        return 0

    password = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="hvjob-bench-") as tmp:
        users = Path(tmp) / "users.txt"
        users.write_text(f":{USER}:{password}\n")

        def log(message: str) -> None:
            if not args.json:
                print(message, file=sys.stderr, flush=True)

        log("per-call ...")
        result: dict[str, Any] = {
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "per_call": per_call(users, password, args.calls, args.repeats),
        }
        log("fresh sessions ...")
        result["fresh_sessions"] = fresh_sessions(users, password, args.fresh_sessions + 1, args.repeats)
        curve = []
        sizes = [int(n) for n in args.nodes.split(",")] + ([1000] if args.big else [])
        for nodes in sizes:
            log(f"fan-out {nodes} nodes ...")
            repeats = args.big_repeats if nodes >= 1000 else args.fanout_repeats
            curve.append(fan_out(users, password, nodes, args.latency_ms, min(nodes, 256), repeats))
        result["fanout"] = curve
        log("kill 1 vs 50 nodes ...")
        result["kill_scaling"] = kill_scaling(users, password, args.latency_ms, args.fanout_repeats)
        hundred = [row for row in curve if row["nodes"] == 100]
        thousand = [row for row in curve if row["nodes"] == 1000]
        fresh = result["fresh_sessions"]
        result["goals"] = {
            "per_call_at_least_pywinrm_bare": result["per_call"]["hvjob_vs_pywinrm_bare"] >= 1.0,
            "per_call_at_least_1_06x_pywinrm_bare": result["per_call"]["hvjob_vs_pywinrm_bare"] >= 1.06,
            "fresh_kill_3_and_stop_4_exchanges": fresh["exchanges"]["hvjob"] == {"kill": 3, "stop": 4},
            "fresh_stop_cpu_below_pywinrm": fresh["hvjob_cpu_vs_pywinrm"] < 1.0,
            "kill_50_within_1_5x_one": result["kill_scaling"]["ratio"] <= 1.5,
            "fanout_100_within_1_3x_ideal": hundred[0]["wall_vs_ideal"] <= 1.3 if hundred else None,
            "fanout_100_at_most_0_6x_pywinrm_pool": hundred[0]["wall_vs_pywinrm_pool"] <= 0.6 if hundred else None,
            "fanout_1000_at_most_0_7x_pywinrm_pool": thousand[0]["wall_vs_pywinrm_pool"] <= 0.7 if thousand else None,
            "fanout_1000_cpu_below_pywinrm_pool": (
                thousand[0]["client_cpu_s"] < thousand[0]["pywinrm_pool_cpu_s"] if thousand else None
            ),
        }
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
