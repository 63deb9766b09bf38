"""The chaos run at bench size: several seeds, each a larger run of tests/chaos_engine.py.

    python bench/chaos.py [--json] [--seeds 20261201,1,2,3] [--operations 3000] [--cli-operations 100] [--nodes 36]

Each seed runs in a child process of its own (``python tests/chaos_engine.py --json``), the first
with its memory traced (tracemalloc: twice as slow, so only once). Prints the operations of every
run by fault kind and verdict, then any mismatch; ``--json`` prints one object instead
(docs/reliability.md reports it). Exit status 1 if any run found a mismatch. Nothing here is
timed against a limit: the figures are what the run measured.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "tests" / "chaos_engine.py"
COLUMNS = ("changed", "unchanged", "unknown", "gone", "failed", "read", "check", "MISMATCH")


def run_seed(seed: int, args: argparse.Namespace, *, memory: bool) -> dict[str, Any]:
    command = [sys.executable, str(ENGINE), "--json", "--seed", str(seed), "--operations", str(args.operations)]
    command += ["--cli-operations", str(args.cli_operations), "--nodes", str(args.nodes)]
    command += ["--concurrency", str(args.concurrency)] + (["--memory"] if memory else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ENGINE.parent)
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise SystemExit(f"seed {seed}: the chaos run printed nothing (exit {done.returncode}): {done.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads(lines[-1])
    return summary


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Counter[str]] = defaultdict(Counter)
    verdicts: Counter[str] = Counter()
    fired: Counter[str] = Counter()
    by_request: Counter[str] = Counter()
    commands: Counter[str] = Counter()
    for run in runs:
        for kind, counts in run["table"].items():
            table[kind].update(counts)
        verdicts.update(run["verdicts"])
        fired.update(run["faults_fired"])
        by_request.update(run["faults_fired_by_request"])
        commands.update(run["commands"])
    memory = next(
        (r["resources"]["memory_early_late_bytes"] for r in runs if r["resources"]["memory_early_late_bytes"]), None
    )
    return {
        "runs": len(runs),
        "seeds": [r["seed"] for r in runs],
        "nodes": runs[0]["nodes"] if runs else 0,
        "operations": sum(r["operations"] for r in runs),
        "library_operations": sum(r["library_operations"] for r in runs),
        "cli_operations": sum(r["cli_operations"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "executed_methods": sum(r["executed_methods"] for r in runs),
        "faulted_operations": sum(r["faulted_operations"] for r in runs),
        "profiles": sum(r["profiles"] for r in runs),
        "commands": dict(commands),
        "faults_fired": dict(sorted(fired.items())),
        "faults_fired_by_request": dict(sorted(by_request.items())),
        "verdicts": dict(verdicts),
        "table": {kind: dict(counts) for kind, counts in sorted(table.items())},
        "mismatches": [f"seed {r['seed']}: {m}" for r in runs for m in r["mismatches"]],
        "wall_seconds": round(sum(r["wall_seconds"] for r in runs), 1),
        "memory_early_late_bytes": memory,
        "resources": [r["resources"] for r in runs],
        "machine": {"python": platform.python_version(), "system": platform.platform()},
    }


def format_table(table: dict[str, dict[str, int]]) -> str:
    order = ["none", *sorted(k for k in table if k != "none")]
    width = max(len("fault"), *(len(k) for k in order))
    lines = [f"{'fault':<{width}}  {'ops':>6}  " + "  ".join(f"{c:>9}" for c in COLUMNS)]
    totals: Counter[str] = Counter()
    for kind in order:
        counts = table.get(kind, {})
        totals.update(counts)
        lines.append(
            f"{kind:<{width}}  {sum(counts.values()):>6}  " + "  ".join(f"{counts.get(c, 0):>9}" for c in COLUMNS)
        )
    lines.append(f"{'total':<{width}}  {sum(totals.values()):>6}  " + "  ".join(f"{totals[c]:>9}" for c in COLUMNS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="20261201,1,2,3", help="comma-separated seeds, one run each")
    parser.add_argument("--operations", type=int, default=3000, help="library operations per run")
    parser.add_argument("--cli-operations", type=int, default=100, help="hvjob subprocesses per run")
    parser.add_argument("--nodes", type=int, default=36)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    runs = []
    for position, seed in enumerate(seeds):
        runs.append(run_seed(seed, args, memory=position == 0))
        if not args.json:
            print(
                f"seed {seed}: {runs[-1]['operations']} operations, {len(runs[-1]['mismatches'])} mismatches",
                file=sys.stderr,
            )
    report = combine(runs)
    if args.json:
        print(json.dumps(report))
    else:
        print(format_table(report["table"]))
        mismatches = len(report["mismatches"])
        print(f"{report['operations']} operations ({report['cli_operations']} from the CLI), {mismatches} mismatches")
        for line in report["mismatches"]:
            print("MISMATCH", line)
    return 1 if report["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
