"""hvjob benchmarks against fake WinRM fleets: per-call overhead and fan-out.

    pip install '.[bench]' && python bench/run.py --json [--big]

Prints one JSON object (see docs/performance.md). The fake nodes run in fleet processes of their
own (hvjob.testing.fleet); each fan-out measurement runs in a child process of its own, so its
peak RSS is the client's alone. Timings are measured here and never asserted by the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
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


# --- fan-out: each measurement in a child process ------------------------------------------------


def _child(mode: str, ports: list[int], concurrency: int, password: str) -> dict[str, Any]:
    """Run in a fresh process: one fan-out over ``ports``; wall time and this process's peak RSS."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import winrm.transport  # noqa: F401 (imported before the clock starts)

    from hvjob import fanout
    from hvjob.transport import ConnectionOptions
    from hvjob.wire import build

    start = time.perf_counter()
    if mode.startswith("hvjob-"):
        options = ConnectionOptions(username=USER, password=password, scheme="http")
        targets = [fanout.HostTarget(f"n{p}", f"127.0.0.1:{p}", options) for p in ports]
        if mode == "hvjob-stop":
            report = fanout.run("stop", targets, lambda c: c.stop(JOB), concurrency=concurrency)
        else:
            report = fanout.run("kill", targets, lambda c: c.kill(JOB), concurrency=concurrency)
        ok = sum(1 for r in report.results if r.ok)
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
    return {"wall_s": wall, "ok": ok, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_child(mode: str, ports: list[int], concurrency: int, password: str) -> dict[str, Any]:
    env = {**os.environ, "HVJOB_BENCH_PASSWORD": password}
    argv = [sys.executable, __file__, "--child", mode, "--concurrency", str(concurrency)]
    argv += ["--ports", ",".join(map(str, ports))]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def fan_out(users: Path, password: str, nodes: int, latency_ms: float, concurrency: int) -> dict[str, Any]:
    with FleetProcess(users, nodes, latency_ms=latency_ms) as fleet:
        hv = _run_child("hvjob-stop", fleet.ports, concurrency, password)
        exchanges = fleet.stats()["requests"] / nodes  # HTTP round trips on one node's path, auth included
    with FleetProcess(users, nodes, latency_ms=latency_ms) as fleet:
        pw = _run_child("pywinrm-stop", fleet.ports, concurrency, password)
    ideal = math.ceil(nodes / concurrency) * exchanges * latency_ms / 1000
    return {
        "nodes": nodes,
        "latency_ms": latency_ms,
        "concurrency": concurrency,
        "exchanges_per_node": exchanges,
        "wall_s": round(hv["wall_s"], 3),
        "ideal_s": round(ideal, 3),
        "wall_vs_ideal": round(hv["wall_s"] / ideal, 3),
        "pywinrm_pool_wall_s": round(pw["wall_s"], 3),
        "peak_rss_mb": round(hv["peak_rss_mb"], 1),
        "pywinrm_pool_peak_rss_mb": round(pw["peak_rss_mb"], 1),
        "ok": hv["ok"],
        "pywinrm_ok": pw["ok"],
    }


def kill_scaling(users: Path, password: str, latency_ms: float) -> dict[str, Any]:
    walls = {}
    for nodes in (1, 50):
        with FleetProcess(users, nodes, latency_ms=latency_ms) as fleet:
            walls[nodes] = _run_child("hvjob-kill", fleet.ports, nodes, password)["wall_s"]
    return {
        "latency_ms": latency_ms,
        "one_node_s": round(walls[1], 3),
        "fifty_nodes_s": round(walls[50], 3),
        "ratio": round(walls[50] / walls[1], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the JSON object only")
    parser.add_argument("--big", action="store_true", help="also 1,000 nodes (reported, not gated)")
    parser.add_argument("--calls", type=int, default=300, help="KillJob calls per timed run")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved runs per client")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--nodes", default="1,10,50,100", help="fan-out sizes (comma-separated)")
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
        log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
        log("per-call ...")
        result: dict[str, Any] = {
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "per_call": per_call(users, password, args.calls, args.repeats),
        }
        curve = []
        sizes = [int(n) for n in args.nodes.split(",")] + ([1000] if args.big else [])
        for nodes in sizes:
            log(f"fan-out {nodes} nodes ...")
            curve.append(fan_out(users, password, nodes, args.latency_ms, concurrency=min(nodes, 256)))
        result["fanout"] = curve
        log("kill 1 vs 50 nodes ...")
        result["kill_scaling"] = kill_scaling(users, password, args.latency_ms)
        hundred = [row for row in curve if row["nodes"] == 100]
        result["goals"] = {
            "per_call_at_least_pywinrm_bare": result["per_call"]["hvjob_vs_pywinrm_bare"] >= 1.0,
            "kill_50_within_1_5x_one": result["kill_scaling"]["ratio"] <= 1.5,
            "fanout_100_within_1_3x_ideal": hundred[0]["wall_vs_ideal"] <= 1.3 if hundred else None,
        }
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
