"""The chaos run: thousands of hvjob operations on a simulated cluster under random faults, each
judged against the simulator's ground truth.

    python tests/chaos_engine.py [--seed N] [--operations N] [--cli-operations N] [--nodes N] [--json]

tests/test_chaos.py runs it at a bounded size (marked ``chaos``); bench/chaos.py runs it larger and
docs/reliability.md reports both. The cluster runs in a fleet process of its own
(``hvjob.testing.fleet --simulate``), so the descriptors, threads and memory measured here are
hvjob's. Jobs are added as the run goes and start, progress, finish and expire on the simulated
clock (running at ``speed``); stop, kill, wait and list run from the library (kept sessions, fresh
fan-outs) and from the ``hvjob`` command (real subprocesses), with a random fault on some layer
for a share of them (:data:`FAULTS`).

Each operation has its nodes to itself while it runs, so that every fault injected for it, and
everything the nodes executed meanwhile, is its own; the faults are narrowed to its node, request
and job besides. Afterwards every result is compared with the method log and the fault log (by
the MessageID each reported request carries) and with the jobs' states before, after and at the
end (:class:`Judge`). The plan (operations, jobs, faults) follows from the seed; how the real
clock interleaves them does not, and no verdict depends on it.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import gc
import http.client
import json
import logging
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from hvjob import fanout
from hvjob.jobs import JobClient, JobFilter, JobState, Method, OperationResult
from hvjob.testing.fleet import FleetProcess
from hvjob.transport import ConnectionOptions, WsmanSession

EXPORT_JOB = "Msvm_CollectionReferencePointExportJob"
TERMINAL = frozenset({"Completed", "Terminated", "Killed", "Exception", "Completed with Warnings"})
MUTATING = frozenset({"KillJob", "RequestStateChange"})
USER = "chaos"

#: The clients' time limits: a fault slower than READ_TIMEOUT is an answer that never came.
OPERATION_TIMEOUT = 1.0
READ_MARGIN = 0.5
READ_TIMEOUT = OPERATION_TIMEOUT + READ_MARGIN
CONNECT_TIMEOUT = 2.0
CLI = [sys.executable, "-c", "from hvjob.cli import run_cli; run_cli()"]


# --- faults ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultPlan:
    """One fault for one operation. ``rule``: what is injected (``POST /_hvjob/faults``) for the
    request named by ``request`` on ``node`` (its job's, when it has one); None for the faults the
    harness makes itself (``refused``: the listener is down throughout; ``idle_close``: the node
    closes its idle keep-alive connections just before)."""

    kind: str
    node: str
    request: str | None
    rule: dict[str, Any] | None
    count: int = 1
    skip: int = 0  # matching requests that pass first: a later read (a wait's poll, a re-read)


def _rule(kind: str, rng: random.Random) -> dict[str, Any] | None:
    """The injection for a fault kind (docs/testing.md, "inject faults"); None for harness faults."""
    rules: dict[str, Callable[[], dict[str, Any] | None]] = {
        "drop_before_execute": lambda: {"kind": "drop_before_execute"},
        "drop_after_execute": lambda: {"kind": "drop_after_execute"},
        "timeout": lambda: {"kind": "timeout"},  # w:TimedOut past OperationTimeout; the method completes
        "reset": lambda: {"kind": "close", "close": "reset"},
        "close_mid_response": lambda: {"kind": "close", "close": "mid_response"},
        "slow": lambda: {"kind": "latency_ms", "latency_ms": rng.randint(100, 700)},
        "slow_past_read_timeout": lambda: {"kind": "latency_ms", "latency_ms": int(READ_TIMEOUT * 1000) + 500},
        "slow_node": lambda: {"kind": "latency_ms", "latency_ms": rng.randint(150, 450)},  # every request, a while
        "restart": lambda: {
            "kind": "restart",
            "seconds": round(rng.uniform(0.3, 1.5), 2),
            "execute": rng.random() < 0.5,
        },
        "quota": lambda: {"kind": "fault", "fault": "quota"},
        "malformed": lambda: {"kind": "body", "body": rng.choice(["malformed", "truncated"])},
        "wrong_relates_to": lambda: {"kind": "relates_to", "relates_to": "uuid:00000000-0000-4000-8000-000000000000"},
        "refused": lambda: None,
        "idle_close": lambda: None,
    }
    return rules[kind]()


#: Fault kinds and their weights among faulted operations.
FAULTS: dict[str, int] = {
    "drop_before_execute": 10,
    "drop_after_execute": 10,
    "timeout": 8,
    "reset": 8,
    "close_mid_response": 6,
    "slow": 6,
    "slow_past_read_timeout": 2,
    "slow_node": 4,
    "restart": 7,
    "quota": 8,
    "malformed": 8,
    "wrong_relates_to": 4,
    "refused": 6,
    "idle_close": 8,
}
#: Faults that lose or spoil the node's answer: the request's outcome is hidden from the client.
HIDING = frozenset({"drop_before_execute", "drop_after_execute", "timeout", "restart", "body", "relates_to", "corrupt"})


def hides(fired: Mapping[str, Any]) -> bool:
    """Whether a fault that fired (an entry of the fault log) hid the answer to its request."""
    kind = str(fired["kind"])
    if kind in HIDING:
        return True
    if kind == "close":
        return fired.get("close") in ("before_response", "mid_response", "reset")
    if kind == "latency_ms":
        return float(fired["latency_ms"]) >= READ_TIMEOUT * 1000
    return False  # an injected WMI or WS-Man fault is an answer; so is a slow one within the read timeout


def silences(fired: Mapping[str, Any]) -> bool:
    """Whether a fault that fired left its request with no answer at all (nothing came back in time)."""
    kind = str(fired["kind"])
    if kind in ("drop_before_execute", "drop_after_execute", "restart"):
        return True
    if kind == "close":
        return fired.get("close") in ("before_response", "reset")
    return kind == "latency_ms" and float(fired["latency_ms"]) >= READ_TIMEOUT * 1000


# --- the plan -------------------------------------------------------------------------------------


@dataclass
class Operation:
    """One operation of the plan, and what became of it."""

    index: int
    front: str  # "cli" or "library"
    command: str  # stop, kill, wait, list, stop-all, stop-hosts (one job, several hosts)
    nodes: tuple[str, ...]  # the hosts named, in order
    job: str | None = None
    check: bool = False
    wait: bool = False
    timeout: float = 2.0
    method: str = "auto"
    missing_ok: bool = True
    running_only: bool = True  # list: --state Running (else every job)
    form: str = "run"  # library stop-hosts: fanout.run or fanout.on_job_node
    faults: list[FaultPlan] = field(default_factory=list)  # the first is the operation's fault kind
    new_jobs: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, str] | None = None  # switched to before this operation (for the whole cluster)
    # what happened
    results: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (node, result dict)
    exit_code: int | None = None
    stderr: str = ""
    summary: dict[str, Any] = field(default_factory=dict)  # the command's, for the CLI
    crash: str | None = None  # the harness could not get a result: a mismatch of its own
    before: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # node -> job id -> truth
    after: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    seconds: float = 0.0
    frozen: str | None = None  # while memory is traced: what happened, as JSON text (see freeze)

    def freeze(self) -> None:
        """Keep what happened as one JSON string until tracing ends. tracemalloc names a block by the
        line that first allocated it, and CPython's free lists (dicts, dict key tables, lists, tuples,
        floats) hand blocks that hvjob and urllib3 freed to the dicts this harness decodes and keeps:
        kept as dicts, these records count as hvjob's memory, more with every operation. The
        containers are emptied in place (they were made with the plan, before tracing began)."""
        self.frozen = json.dumps([self.results, self.before, self.after, self.summary, self.seconds])
        self.results.clear()
        self.before.clear()
        self.after.clear()
        self.summary.clear()
        self.seconds = 0.0

    def thaw(self) -> None:
        if self.frozen is not None:
            results, before, after, summary, self.seconds = json.loads(self.frozen)
            self.results.extend((node, result) for node, result in results)
            self.before.update(before)
            self.after.update(after)
            self.summary.update(summary)
            self.frozen = None

    @property
    def fault(self) -> FaultPlan | None:
        return self.faults[0] if self.faults else None

    def describe(self) -> str:
        nodes = ",".join(self.nodes) if len(self.nodes) < 4 else f"{len(self.nodes)} nodes"
        parts = [f"op {self.index}", self.front, self.command + (" --check" if self.check else ""), nodes]
        if self.job:
            parts.append(f"job {self.job}")
        if self.wait:
            parts.append("--wait")
        if self.method != "auto":
            parts.append(f"--method {self.method}")
        for fault in self.faults:
            on = (
                (f" on {fault.request}" + (f" after {fault.skip} passed" if fault.skip else ""))
                if fault.request
                else ""
            )
            parts.append(f"fault {fault.kind}{on} at {fault.node}")
        return " ".join(parts)


@dataclass(frozen=True)
class ChaosConfig:
    seed: int = 20261201
    operations: int = 1200  # library operations
    cli_operations: int = 60  # hvjob subprocesses
    nodes: int = 24
    concurrency: int = 8
    fault_rate: float = 0.45
    speed: float = 40.0  # simulated seconds per real second
    trace_memory: bool = False  # tracemalloc doubles the run's time: the bench does it
    password: str | None = None  # the account's; generated when None


def _job_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()


def _new_job(rng: random.Random, node: str) -> dict[str, Any]:
    return {
        "id": _job_id(rng),
        "node": node,
        "state": "Running",
        "percent": rng.randint(0, 60),
        "runs_for": None if rng.random() < 0.3 else rng.randint(10, 600),
        "time_before_removal": rng.randint(10, 300),
        "cancellable": rng.random() > 0.07,
        "delete_on_completion": rng.random() < 0.15,
        "owner": rng.choice(["CONTOSO\\backup-svc", "CONTOSO\\admin"]),
    }


def _pick(rng: random.Random, weights: Mapping[str, int]) -> str:
    names = sorted(weights)
    return rng.choices(names, [weights[n] for n in names])[0]


COMMANDS = {"stop": 160, "kill": 70, "wait": 80, "list": 80, "stop-all": 30, "stop-hosts": 60}
COMMANDS |= {"cluster-stop": 2, "cluster-stop-all": 2}  # rare: each holds every node while it runs
#: One job on several hosts (each job once on a cluster), and the selections of stop --all.
ONE_JOB_HOSTS = frozenset({"stop-hosts", "cluster-stop"})
STOP_ALL = frozenset({"stop-all", "cluster-stop-all"})
STOPS = frozenset({"stop", "kill", *ONE_JOB_HOSTS, *STOP_ALL})
#: The requests a fault can spoil, by command (the mutating method is the stop's first).
TARGETS = {
    "stop": ["Get", "*method", "*method"],
    "stop-hosts": ["Get", "*method", "*method"],
    "stop-all": ["Enumerate", "Pull", "Get", "*method", "*method"],
    "cluster-stop": ["Get", "*method", "*method"],
    "cluster-stop-all": ["Get", "*method", "*method"],  # not the Enumerate: discovery sends one there too
    "kill": ["KillJob"],
    "wait": ["Get"],
    "list": ["Enumerate", "Pull"],  # a Pull only where a node has more jobs than a page (32)
}


BUSY = 36  # jobs added at once to make a node busy: more than hvjob's page of 32


def make_plan(config: ChaosConfig, nodes: Sequence[str], initial: Mapping[str, list[str]]) -> list[Operation]:
    """Every operation, its jobs and its fault, from the seed alone."""
    rng = random.Random(config.seed)
    jobs_on = {node: list(initial.get(node, [])) for node in nodes}
    total = config.operations + config.cli_operations
    cli = set(rng.sample(range(total), config.cli_operations))
    control = nodes[-1]  # the control API goes through this node: never taken away
    plan: list[Operation] = []
    for index in range(total):
        front = "cli" if index in cli else "library"
        command = _pick(rng, COMMANDS)
        node = rng.choice(list(nodes))
        op = Operation(index, front, command, (node,))
        if rng.random() < 0.5 or not jobs_on[node]:
            op.new_jobs.append(_new_job(rng, node))
            jobs_on[node].append(op.new_jobs[-1]["id"])
        if rng.random() < 0.012:  # a busy node: more running jobs than a page, so that lists Pull
            batch = [{**_new_job(rng, node), "runs_for": None, "time_before_removal": 600} for _ in range(BUSY)]
            op.new_jobs += batch
            jobs_on[node] += [job["id"] for job in batch]
        if command in ("stop", "kill", "wait", *ONE_JOB_HOSTS):
            roll = rng.random()
            if roll < 0.04:
                op.job = _job_id(rng)  # a typo: no node has it
            elif roll < 0.08:
                other = rng.choice([n for n in nodes if n != node] or list(nodes))
                op.job = rng.choice(jobs_on[other]) if jobs_on[other] else _job_id(rng)
            else:
                mine = jobs_on[node]
                op.job = mine[-1] if rng.random() < 0.5 else rng.choice(mine)
        if command == "stop-hosts":
            others = rng.sample([n for n in nodes if n != node], k=min(len(nodes) - 1, rng.choice([1, 2])))
            op.nodes = tuple(rng.sample([node, *others], k=1 + len(others)))
            op.form = rng.choice(["run", "on_job_node"])
        elif command.startswith("cluster-"):
            op.nodes = tuple(nodes)  # every node, in the cluster's order; the operation has them all to itself
            op.form = "cluster"
        op.check = command in STOPS and rng.random() < 0.08
        op.wait = command in ("stop", *ONE_JOB_HOSTS) and rng.random() < 0.25
        op.timeout = round(rng.uniform(0.2, 1.2), 2) if command == "wait" else 3.0
        if command in ("stop", *ONE_JOB_HOSTS):
            op.method = rng.choices(["auto", "kill-job", "kill-job-first"], [85, 10, 5])[0]
        op.missing_ok = command != "kill" or rng.random() < 0.5
        op.running_only = command != "list" or rng.random() < 0.6
        if rng.random() < config.fault_rate:
            op.faults = _plan_faults(rng, op, node, control)
        if index == 0 or rng.random() < 0.01:
            op.profile = {**_BASE_PROFILE, **rng.choice(PROFILES)}
        plan.append(op)
    return plan


def _plan_faults(rng: random.Random, op: Operation, node: str, control: str) -> list[FaultPlan]:
    """The operation's fault, and for a fifth of them a second one on a later read (the re-read
    after a lost answer, a wait's poll) whose answer is spoiled too."""
    allowed = dict(FAULTS)
    if node == control:
        for kind in ("refused", "restart", "idle_close"):
            allowed.pop(kind)
    if op.front == "cli" or op.command not in ("stop", "kill", "wait", "list", "stop-all"):
        allowed.pop("idle_close", None)  # only a kept session has an idle connection to lose
    kind = _pick(rng, allowed)
    rule = _rule(kind, rng)
    if rule is None:
        return [FaultPlan(kind, node, None, None)]
    request = "*" if kind == "slow_node" else rng.choice(TARGETS[op.command])
    if request == "*method":
        request = "KillJob" if op.method in ("kill-job", "kill-job-first") else "RequestStateChange"
    count = 2 if request in ("Get", "Enumerate") and rng.random() < 0.25 else 1  # the retry spoiled too
    count = 8 if kind == "slow_node" else count
    skip = 0
    if request == "Get" and op.command in ("stop", "wait", *ONE_JOB_HOSTS) and rng.random() < 0.5:
        skip = rng.randint(1, 3)  # a wait's poll, or the read after a lost answer
    faults = [FaultPlan(kind, node, request, rule, count, skip)]
    if op.command in ("stop", "kill", *ONE_JOB_HOSTS) and rng.random() < 0.2:
        second = rng.choice(["quota", "drop_before_execute", "close_mid_response", "malformed", "timeout"])
        faults.append(FaultPlan(second, node, "Get", _rule(second, rng), 1, rng.randint(1, 2)))
    return faults


#: The simulator's behaviour switches the run moves between (docs/testing.md, "Choose a profile"):
#: what Windows does where no capture says. No verdict depends on which is in force.
PROFILES: list[dict[str, str]] = [
    {"request_state_change": "sync"},
    {"request_state_change": "async"},
    {"request_state_change": "async-without-job"},
    {"request_state_change": "async", "killed_state": "Terminated"},
    {"request_state_change_support": "returns-32770"},
    {"request_state_change_support": "faults"},
    {"killjob": "returns-1"},
    {"killjob_finished": "success"},
    {"uncancellable": "not-supported"},
]
_BASE_PROFILE = {
    "request_state_change": "sync",
    "request_state_change_support": "supported",
    "killjob": "supported",
    "killed_state": "Killed",
    "killjob_finished": "invalid-state",
    "uncancellable": "invalid-state",
}


# --- the cluster ------------------------------------------------------------------------------------


class Control:
    """The simulator's control API (``/_hvjob/``), through one node's listener."""

    def __init__(self, url: str) -> None:
        host_port = url.split("//", 1)[1].split("/", 1)[0]
        host, _, port = host_port.rpartition(":")
        self.host, self.port = host, int(port)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, "/_hvjob/" + path, body=payload, headers={"Connection": "close"})
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status >= 400:
            raise RuntimeError(f"control {method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data)

    def jobs(self, node: str | None = None) -> dict[str, dict[str, Any]]:
        found = self.call("GET", "jobs" + (f"?node={node}" if node else ""))["jobs"]
        return {str(j["id"]): j for j in found}


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _traced() -> int:
    """Bytes held by allocations made in hvjob and the libraries it calls: not by this harness's
    records (its own file, and the JSON it decoded the results and snapshots from)."""
    gc.collect()
    ignored = [tracemalloc.Filter(False, __file__), tracemalloc.Filter(False, "*/json/*")]
    snapshot = tracemalloc.take_snapshot().filter_traces(ignored)
    return sum(stat.size for stat in snapshot.statistics("filename"))


#: Whose objects the census counts: hvjob's, and those of the libraries it holds connections with.
CENSUS_MODULES = ("hvjob.", "urllib3.", "spnego.", "requests.")


def census() -> Counter[str]:
    """Live objects of hvjob and the libraries under it, by type (enum members and classes aside):
    what a run leaves behind once everything it opened is closed."""
    gc.collect()
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        module = getattr(kind, "__module__", None)  # a descriptor on some metaclasses' instances
        if isinstance(module, str) and module.startswith(CENSUS_MODULES) and not isinstance(obj, (type, enum.Enum)):
            counts[f"{module}.{kind.__qualname__}"] += 1
    return counts


@dataclass
class Resources:
    fds_before: int = 0
    fds_after: int = 0
    threads_before: int = 0
    threads_after: int = 0
    objects_before: Counter[str] = field(default_factory=Counter)
    objects_after: Counter[str] = field(default_factory=Counter)
    memory_samples: list[tuple[int, int]] = field(default_factory=list)  # (operations done, traced bytes)

    @property
    def objects_left(self) -> dict[str, int]:
        """Types with more live objects after the run than before it."""
        return {
            k: n - self.objects_before[k] for k, n in sorted(self.objects_after.items()) if n > self.objects_before[k]
        }

    @property
    def memory_early_late(self) -> tuple[int, int] | None:
        samples = [b for _, b in self.memory_samples]
        if len(samples) < 6:
            return None
        third = max(2, len(samples) // 3)
        early, late = sorted(samples[1 : 1 + third]), sorted(samples[-third:])
        return early[len(early) // 2], late[len(late) // 2]

    def problems(self) -> list[str]:
        found = []
        if self.fds_after > self.fds_before:
            found.append(f"file descriptors: {self.fds_before} before, {self.fds_after} after")
        if self.threads_after > self.threads_before:
            found.append(f"threads: {self.threads_before} before, {self.threads_after} after")
        if self.objects_left:
            found.append(f"objects still alive after the run: {self.objects_left}")
        pair = self.memory_early_late
        if pair is not None and pair[1] > pair[0] * 1.15 + 512 * 1024:
            found.append(f"memory held by hvjob grew from {pair[0]} to {pair[1]} bytes over the run")
        return found


# --- running ----------------------------------------------------------------------------------------


class Scheduler:
    """Operations sharing a node run one at a time, in plan order; others run side by side."""

    def __init__(self, plan: Sequence[Operation]) -> None:
        self._deps: dict[int, set[int]] = {}
        last: dict[str, int] = {}
        for op in plan:
            self._deps[op.index] = {last[n] for n in op.nodes if n in last}
            for n in op.nodes:
                last[n] = op.index
        self._waiting = list(plan)
        self._done: set[int] = set()
        self._cond = threading.Condition()

    def take(self) -> Operation | None:
        with self._cond:
            while self._waiting:
                for position, op in enumerate(self._waiting):
                    if self._deps[op.index] <= self._done:
                        del self._waiting[position]
                        return op
                self._cond.wait()
            return None

    def done(self, op: Operation) -> None:
        with self._cond:
            self._done.add(op.index)
            self._cond.notify_all()

    def abandon(self) -> None:
        with self._cond:
            self._waiting.clear()
            self._cond.notify_all()


class ChaosRun:
    """Start the cluster, run the plan, read the ground truth; :meth:`judge` gives the verdicts."""

    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self.password = config.password or secrets.token_urlsafe(18)
        self.resources = Resources()
        self.plan: list[Operation] = []
        self.log: list[dict[str, Any]] = []
        self.fired: list[dict[str, Any]] = []
        self.final: dict[str, dict[str, Any]] = {}
        self.profiles: list[dict[str, str]] = []  # the profiles switched to, in order
        self.wall_seconds = 0.0
        self._sessions: dict[str, WsmanSession] = {}
        self.control_node = ""
        self._done = 0
        self._lock = threading.Lock()

    # --- set-up ---------------------------------------------------------------------------------

    def options(self) -> ConnectionOptions:
        return ConnectionOptions(
            username=USER,
            password=self.password,
            scheme="http",
            operation_timeout=OPERATION_TIMEOUT,
            read_timeout_margin=READ_MARGIN,
            connect_timeout=CONNECT_TIMEOUT,
        )

    def run(self) -> ChaosRun:
        self.resources.objects_before = census()
        self.resources.fds_before, self.resources.threads_before = _open_fds(), threading.active_count()
        started = time.monotonic()
        self._run_on_a_fleet()
        for op in self.plan:
            op.thaw()  # tracing has stopped
        self.wall_seconds = time.monotonic() - started
        self.resources.fds_after, self.resources.threads_after = self._settled()
        self.resources.objects_after = census()  # here, once every frame that held a session has returned
        return self

    def _run_on_a_fleet(self) -> None:
        config = self.config
        with tempfile.TemporaryDirectory(prefix="hvjob-chaos-") as directory:
            users = Path(directory) / "users.txt"
            users.write_text(f":{USER}:{self.password}\n", encoding="utf-8")
            users.chmod(0o600)
            with FleetProcess(users, config.nodes, simulate=True) as fleet:
                self.urls = dict(fleet.nodes)
                nodes = list(self.urls)
                self.control_node = nodes[-1]
                self.control = Control(self.urls[self.control_node])
                initial = self.control.jobs()
                by_node: dict[str, list[str]] = defaultdict(list)
                for job in initial.values():
                    if job["class"] == EXPORT_JOB and not job["removed"]:
                        by_node[str(job["node"])].append(str(job["id"]))
                self.plan = make_plan(config, nodes, by_node)
                self.control.call("POST", "clock", {"speed": config.speed})
                if config.trace_memory:
                    tracemalloc.start(1)
                try:
                    self._run_all()
                finally:
                    while self._sessions:
                        self._sessions.popitem()[1].close()
                    if config.trace_memory:
                        self.resources.memory_samples.append((self._done, _traced()))
                        tracemalloc.stop()
                self.control.call("POST", "clock", {"speed": 0, "advance": 120})  # every stop under way ends
                self.log = self.control.call("GET", "log")["log"]
                self.fired = self.control.call("GET", "faults/log")["fired"]
                self.final = self.control.jobs()

    def _settled(self) -> tuple[int, int]:
        """Descriptors and threads once closed things are collected (threads finish their last step)."""
        deadline = time.monotonic() + 15
        while True:
            gc.collect()
            fds, threads = _open_fds(), threading.active_count()
            done = fds <= self.resources.fds_before and threads <= self.resources.threads_before
            if done or time.monotonic() > deadline:
                return fds, threads
            time.sleep(0.05)

    def _run_all(self) -> None:
        scheduler = Scheduler(self.plan)
        step = max(1, len(self.plan) // 12)
        failure: list[BaseException] = []

        def worker() -> None:
            while (op := scheduler.take()) is not None:
                try:
                    self._execute(op)
                except BaseException as exc:  # the harness itself broke: stop, and say so
                    failure.append(exc)
                    scheduler.abandon()
                    return
                finally:
                    scheduler.done(op)
                with self._lock:
                    self._done += 1
                    sample = self.config.trace_memory and self._done % step == 0
                if sample:
                    with self._lock:
                        self.resources.memory_samples.append((self._done, _traced()))

        threads = [threading.Thread(target=worker, name=f"chaos-{n}") for n in range(self.config.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failure:
            raise RuntimeError(f"the chaos harness failed: {failure[0]!r}") from failure[0]

    # --- one operation ----------------------------------------------------------------------------

    def _execute(self, op: Operation) -> None:
        control = self.control
        if op.profile is not None:
            control.call("POST", "profile", op.profile)
            with self._lock:
                self.profiles.append(op.profile)
        for spec in op.new_jobs:
            control.call("POST", "jobs", spec)
        op.before.update({n: control.jobs(n) for n in op.nodes})
        for fault in op.faults:
            if fault.rule is not None:
                rule = {**fault.rule, "node": fault.node, "method": fault.request, "count": fault.count}
                rule["skip"] = fault.skip
                if fault.request not in ("Enumerate", "Pull", "*") and op.job and not fault.skip:
                    rule["job"] = op.job  # a later read may be of a stop's tracking job: any job then
                control.call("POST", "faults", rule)
            elif fault.kind == "refused":
                control.call("POST", f"nodes/{fault.node}", {"listening": False})
            elif fault.kind == "idle_close":
                self._session(fault.node)  # a kept session that has been used: its connection is open
                control.call("POST", f"nodes/{fault.node}", {"close_connections": True})
        started = time.monotonic()
        try:
            if op.front == "cli":
                self._run_cli(op)
            else:
                self._run_library(op)
        except Exception as exc:  # an operation must report, never raise
            op.crash = f"{type(exc).__name__}: {exc}"
        op.seconds = time.monotonic() - started
        for fault in op.faults:
            if fault.rule is not None:
                control.call("DELETE", f"faults?node={fault.node}")
            if fault.kind in ("refused", "restart"):
                control.call("POST", f"nodes/{fault.node}", {"listening": True})  # back, whatever its timer says
        op.after.update({n: control.jobs(n) for n in op.nodes})
        if self.config.trace_memory:
            op.freeze()

    def _session(self, node: str) -> WsmanSession:
        session = self._sessions.get(node)
        if session is None:
            session = self._sessions[node] = WsmanSession(self.urls[node], self.options())
            JobClient(session).identify()  # authenticated, its connection kept open
        return session

    def _run_library(self, op: Operation) -> None:
        client_options: dict[str, Any] = {"check": op.check, "poll_initial": 0.05, "poll_max": 0.25}
        if op.command in ONE_JOB_HOSTS or op.command == "cluster-stop-all":
            targets = [fanout.HostTarget(n, self.urls[n], self.options()) for n in op.nodes]
            job = op.job or ""

            def stop(client: JobClient) -> OperationResult:
                return client.stop(job, wait=op.wait, timeout=op.timeout, method=cast(Method, op.method))

            common: dict[str, Any] = {"concurrency": 8, "processes": 1, "client_options": client_options}
            if op.command == "cluster-stop-all":
                selection = JobFilter((JobState.RUNNING,))
                report = fanout.stop_selected_once(targets, selection, {"method": op.method}, **common)
            elif op.form in ("on_job_node", "cluster"):
                report = fanout.on_job_node("stop", targets, job, stop, missing_ok=True, **common)
            else:
                report = fanout.run("stop", targets, stop, **common)
            op.results.extend((r.host, _plain(r)) for r in report.results)
            return
        node = op.nodes[0]
        client = JobClient(self._session(node), **client_options)
        if op.command == "stop":
            method = cast(Method, op.method)
            result = client.stop(op.job or "", wait=op.wait, timeout=op.timeout, method=method)
        elif op.command == "kill":
            result = client.kill(op.job or "", missing_ok=op.missing_ok)
        elif op.command == "wait":
            result = client.wait(op.job or "", timeout=op.timeout)
        elif op.command == "list":
            result = client.list([JobState.RUNNING] if op.running_only else None)
        else:
            result = client.stop_all([JobState.RUNNING])
        op.results.append((node, _plain(result)))

    def _run_cli(self, op: Operation) -> None:
        address = {n: self.urls[n].split("//", 1)[1].split("/", 1)[0] for n in op.nodes}
        args = [*CLI, "--scheme", "http", "-u", USER, "--output", "json"]
        args += ["--operation-timeout", str(OPERATION_TIMEOUT), "--read-timeout-margin", str(READ_MARGIN)]
        args += ["--connect-timeout", str(CONNECT_TIMEOUT)]
        if op.check:
            args.append("--check")
        hosts = [address[n] for n in op.nodes]
        if op.command.startswith("cluster-"):  # discovered through the control node, which stays up
            args += ["--cluster", *(a for n in op.nodes for a in ("--resolve", f"{n}={address[n]}"))]
            hosts = [self.control_node]
        if op.command in ("stop", *ONE_JOB_HOSTS):
            args += ["stop", *hosts, "--job", op.job or "", "--method", op.method]
            if op.wait:
                args += ["--wait", "--timeout", str(op.timeout)]
        elif op.command == "kill":
            args += ["kill", *hosts, "--job", op.job or "", "--missing-ok" if op.missing_ok else "--no-missing-ok"]
        elif op.command == "wait":
            args += ["wait", *hosts, "--job", op.job or "", "--timeout", str(op.timeout)]
        elif op.command == "list":
            args += ["list", *hosts] + (["--state", "Running"] if op.running_only else [])
        else:
            args += ["stop", *hosts, "--all", "--yes", "--state", "Running"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HVJOB_")}
        env["HVJOB_PASSWORD"] = self.password
        proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, check=False)
        op.exit_code, op.stderr = proc.returncode, proc.stderr[-4000:]
        by_address = {a: n for n, a in address.items()}
        document = json.loads(proc.stdout)
        op.results.extend((by_address.get(str(r["host"]), str(r["host"])), r) for r in document["results"])
        op.summary.update(document.get("summary", {}))


def _plain(result: OperationResult) -> dict[str, Any]:
    """A result as plain JSON data, no longer holding hvjob's objects (or their memory)."""
    data: dict[str, Any] = json.loads(json.dumps(result.to_dict()))
    return data


# --- judging --------------------------------------------------------------------------------------


def _accepted(method: str, value: object) -> bool:
    return value == 0 or (method == "RequestStateChange" and value == 4096)


@dataclass
class Verdict:
    op: Operation
    fault: str  # the table's row: the fault that fired for the operation, else "none"
    verdict: str
    mismatches: list[str] = field(default_factory=list)


class Judge:
    """Compare every operation's report with the ground truth (see the module docstring)."""

    def __init__(self, run: ChaosRun) -> None:
        self.run = run
        self.log_by_mid: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in run.log:
            self.log_by_mid[str(entry["message_id"])].append(entry)
        self.fired_by_mid: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for fired in run.fired:
            self.fired_by_mid[str(fired["message_id"])].append(fired)
        self.claims: dict[str, set[int]] = defaultdict(set)
        self.verdicts: list[Verdict] = []
        self.global_mismatches: list[str] = []

    def judge(self) -> Judge:
        for op in self.run.plan:
            self.verdicts.append(self._operation(op))
        self._everything_accounted_for()
        return self

    # --- the whole run ------------------------------------------------------------------------------

    def _everything_accounted_for(self) -> None:
        check_ops = {op.index for op in self.run.plan if op.check}
        for entry in self.run.log:
            mid = str(entry["message_id"])
            owners = self.claims.get(mid, set())
            what = f"{entry['method']} on {entry['node']} for job {entry['job']} (MessageID {mid})"
            if not owners:
                self.global_mismatches.append(f"the node executed {what}, and no operation reported sending it")
            elif len(owners) > 1:
                self.global_mismatches.append(f"{what} is reported by operations {sorted(owners)}")
            elif owners & check_ops and entry["method"] in MUTATING:
                self.global_mismatches.append(f"check mode sent {what} (op {min(owners)})")
        for mid, entries in self.log_by_mid.items():
            if len(entries) > 1:
                self.global_mismatches.append(
                    f"one request executed {len(entries)} times (a blind resend): MessageID {mid}, "
                    + ", ".join(f"{e['method']} on {e['node']}" for e in entries)
                )
        for fired in self.run.fired:
            if not self.claims.get(str(fired["message_id"])):
                self.global_mismatches.append(
                    f"a {fired['kind']} fault spoiled {fired['request']} on {fired['node']} "
                    f"(MessageID {fired['message_id']}), a request no operation reported"
                )

    # --- one operation ------------------------------------------------------------------------------

    def _operation(self, op: Operation) -> Verdict:
        problems: list[str] = []
        mids = {str(q.get("message_id")) for _, r in op.results for q in _all_requests(r)}
        for mid in mids:
            self.claims[mid].add(op.index)
        fault = "none"
        if op.fault is not None and (op.fault.rule is None or any(self.fired_by_mid.get(m) for m in mids)):
            fault = op.fault.kind
        if op.crash is not None:
            problems.append(f"no result: {op.crash}")
            return Verdict(op, fault, "MISMATCH", problems)
        problems += self._accounting(op)
        for node, result in op.results:
            problems += self._result(op, node, result)
            for nested in result.get("jobs") or [] if op.command in STOP_ALL else []:
                problems += self._result(op, node, nested, selected=True)
        verdict = "MISMATCH" if problems else self._classify(op)
        return Verdict(op, fault, verdict, problems)

    def _accounting(self, op: Operation) -> list[str]:
        problems = []
        hosts = [node for node, _ in op.results]
        if sorted(hosts) != sorted(op.nodes):
            problems.append(f"results for {hosts}, hosts named {list(op.nodes)}: each host exactly once")
        if op.front == "cli":
            if "Traceback" in op.stderr:
                problems.append(f"a traceback on stderr: {op.stderr[-600:]}")
            expected = _exit_code([r for _, r in op.results])
            if op.exit_code != expected:
                problems.append(f"exit status {op.exit_code}, the results say {expected}")
        for _, result in op.results:
            if self.run.password in json.dumps(result):
                problems.append("the password is in a result")
        if self.run.password in op.stderr:
            problems.append("the password is on stderr")
        return problems

    def _primary(self, op: Operation) -> dict[str, Any]:
        owner = self.run.final.get(op.job or "", {}).get("node")
        for node, result in op.results:
            if node == owner:
                return result
        return op.results[0][1]

    def _classify(self, op: Operation) -> str:
        result = self._primary(op)
        if op.command in ("wait", "list"):
            return "read" if result["status"] == "ok" else "failed"
        if op.check:
            return "check"
        changed = result["changed"]
        if len(op.nodes) > 1:
            values = [r["changed"] for _, r in op.results]
            changed = True if True in values else None if None in values else False
        if changed is True:
            return "changed"
        if changed is None:
            return "unknown"
        if result.get("gone"):
            return "gone"
        return "unchanged" if result["status"] == "ok" else "failed"

    def _result(self, op: Operation, node: str, result: dict[str, Any], *, selected: bool = False) -> list[str]:
        """One host's result (or, for stop --all, one selected job's) against the truth."""
        problems: list[str] = []

        def wrong(text: str) -> None:
            shown = {k: result.get(k) for k in ("status", "changed", "job_state", "gone", "found")}
            error = result.get("error") or {}
            shown["error"] = f"{error.get('type')}: {error.get('message')}" if error else None
            problems.append(f"{text} [on {node}; reported {shown}]")

        requests = result.get("requests") or []
        mutating = [q for q in requests if q["request"] in MUTATING]
        job = result.get("job")
        if result.get("status") == "unreachable":  # docs/cli.md: "... and the host answered nothing"
            answered = [str(q["request"]) for q in requests if self._answered(str(q.get("message_id")))]
            if answered:
                wrong(f"reported unreachable, but the node sent an answer (cut short or spoiled) to {answered}")
        for q in requests:
            self._request(op, node, q, job if not (op.command in STOP_ALL and not selected) else None, wrong)
        if op.command in ("wait", "list") and mutating:
            wrong(f"a read sent {[q['request'] for q in mutating]}")
        changed = result.get("changed")
        executed = [e for q in mutating for e in self.log_by_mid.get(str(q.get("message_id")), [])]
        accepted = [e for e in executed if e["fault"] is None and _accepted(e["method"], e["return_value"])]
        effectful = [e for e in executed if e.get("effect") is not None]
        if op.check:
            if mutating:
                wrong(f"check mode sent {[q['request'] for q in mutating]}")
            if changed is not False:
                wrong(f"check mode sent nothing, but reported changed {changed}")
        elif op.command not in ("wait", "list"):
            several = op.command in STOP_ALL and not selected
            if changed is True and (len(accepted) < 1 if several else len(accepted) != 1):
                wrong(f"changed, but the node accepted {len(accepted)} mutating methods for it ({_effects(executed)})")
            if not several and len(effectful) > 1:
                wrong(f"{len(effectful)} mutating methods took effect for one job ({_effects(effectful)})")
            if changed is False and (accepted or effectful):
                wrong(f"unchanged, but the node executed {_effects(executed)}")
            if changed is None and not any(q["outcome"] == "unknown" for q in mutating):
                wrong("changed unknown, but every mutating request was answered or none was sent")
            known = [
                q for q in mutating if q["outcome"] == "answered" and _accepted(q["request"], q.get("return_value"))
            ]
            if known and changed is not True:
                wrong(
                    f"the node accepted {known[0]['request']} (answered {known[0].get('return_value')}), not reported"
                )
        if op.command in STOP_ALL and not selected:
            problems += self._selection(op, node, result)
        elif op.command == "list":
            problems += self._listing(op, node, result)
        elif job:
            problems += self._job_truth(op, node, result, str(job))
        return problems

    def _answered(self, mid: str) -> bool:
        """Whether the node sent some answer to the request (whole, late, cut short or spoiled): it
        reached the node (the fault log or the method log has it) and no fault silenced the answer."""
        fired = self.fired_by_mid.get(mid, [])
        if not fired and not self.log_by_mid.get(mid):
            return False  # never seen by the node, or a read answered normally (the client knows that one)
        return not any(silences(f) for f in fired)

    def _request(
        self, op: Operation, node: str, q: Mapping[str, Any], job: str | None, wrong: Callable[[str], None]
    ) -> None:
        mid = str(q.get("message_id"))
        name, outcome = str(q["request"]), str(q["outcome"])
        if q.get("message_id") is None:
            wrong(f"{name} carries no MessageID")
            return
        entries = self.log_by_mid.get(mid, [])
        fired = self.fired_by_mid.get(mid, [])
        hidden = any(hides(f) for f in fired)
        faults = ", ".join(f"{f['kind']}" for f in fired) or "none"
        for entry in entries:
            if entry["node"] != node:
                wrong(f"{name} {mid} reported on {node}, executed on {entry['node']}")
            if job is not None and str(entry["job"]).lower() != job.lower():
                wrong(f"{name} {mid} was for job {job}; the node executed it on {entry['job']} (a job not asked about)")
        if name in MUTATING:
            if outcome == "answered":
                value = q.get("return_value")
                if value is not None and not (
                    len(entries) == 1 and entries[0]["return_value"] == value and entries[0]["answer"] == "sent"
                ):
                    logged = [(e["return_value"], e["answer"]) for e in entries]
                    wrong(f"{name} answered {value}; the log has (return value, answer) {logged}; faults: {faults}")
                if value is None and any(e["return_value"] is not None for e in entries):
                    wrong(f"{name} answered with a fault, but the node ran it: {entries}")
            elif outcome == "unknown":
                if not hidden:
                    ran = [(e["return_value"], e["answer"]) for e in entries] or "not executed"
                    wrong(
                        f"{name} outcome reported unknown, but no fault hid its answer (faults: {faults}; log: {ran})"
                    )
            elif outcome == "failed":
                if entries:
                    wrong(f"{name} reported not sent or failed, but the node executed it: {entries[0]['effect']}")
            else:
                wrong(f"{name} left {outcome}")
        elif outcome in ("unknown", "in flight"):
            wrong(f"the read {name} reported {outcome}")

    def _job_truth(self, op: Operation, node: str, result: Mapping[str, Any], job: str) -> list[str]:
        problems = []
        before = op.before.get(node, {}).get(job)
        after = op.after.get(node, {}).get(job)
        final = self.run.final.get(job)
        visible_before = before is not None and not before["removed"]
        visible_after = after is not None and not after["removed"]
        truth = f"truth: before {_state(before)}, after {_state(after)}, at the end {_state(final)}"
        ok, gone, state = result["status"] == "ok", bool(result.get("gone")), result.get("job_state")
        if gone and visible_after:
            problems.append(f"reported gone on {node}, but the job is there ({truth})")
        if result.get("found") is True and not visible_before:
            problems.append(f"reported found on {node}, but the job was not there ({truth})")
        if result.get("found") is False and visible_after:
            problems.append(f"reported not found on {node}, but the job is there ({truth})")
        if state in TERMINAL and (final is None or final["state"] != state):
            problems.append(f"reported {state} on {node} ({truth})")
        if state is not None and state not in TERMINAL and before is not None and before["state"] in TERMINAL:
            problems.append(f"reported {state} on {node}, but it had finished before the operation ({truth})")
        stopping = op.command in STOPS and not op.check
        if stopping and ok and not gone and result.get("found") is not False:
            after_ok = after is not None and (after["state"] in TERMINAL or after["state"] == "Shutting Down")
            if op.command == "kill":
                after_ok = after is not None and after["state"] in TERMINAL
            if not after_ok or final is None or final["state"] not in TERMINAL:
                problems.append(f"{op.command} reported ok on {node}, but the job did not stop ({truth})")
        if op.command == "wait":
            error = (result.get("error") or {}).get("type")
            if ok and not gone and state not in TERMINAL:
                problems.append(f"wait reported ok with the job {state} ({truth})")
            if error == "wait_timeout" and state in TERMINAL:
                problems.append(f"wait timed out with the job {state} ({truth})")
            if result.get("succeeded") is True and (final is None or final["state"] != "Completed"):
                problems.append(f"wait reported success ({truth})")
        return [f"{p} [{_short(result)}]" for p in problems]

    def _listing(self, op: Operation, node: str, result: Mapping[str, Any]) -> list[str]:
        if result["status"] != "ok":
            return []
        listed = {str(j["InstanceID"]): j for j in result.get("jobs") or []}
        before = {k: v for k, v in op.before.get(node, {}).items() if v["class"] == EXPORT_JOB}
        after = {k: v for k, v in op.after.get(node, {}).items() if v["class"] == EXPORT_JOB}
        return self._against_selection(node, set(listed), before, after, op.running_only, "listed")

    def _selection(self, op: Operation, node: str, result: Mapping[str, Any]) -> list[str]:
        if "jobs" not in result or (result.get("error") and not result["jobs"]):
            return []  # the selection itself failed: nothing was selected, nothing to compare
        chosen = {str(j["job"]) for j in result.get("jobs") or []}
        before = {k: v for k, v in op.before.get(node, {}).items() if v["class"] == EXPORT_JOB}
        after = {k: v for k, v in op.after.get(node, {}).items() if v["class"] == EXPORT_JOB}
        return self._against_selection(node, chosen, before, after, True, "selected")

    @staticmethod
    def _against_selection(
        node: str,
        chosen: set[str],
        before: Mapping[str, Mapping[str, Any]],
        after: Mapping[str, Mapping[str, Any]],
        running_only: bool,
        verb: str,
    ) -> list[str]:
        """Sound (nothing chosen that could not have matched while the operation ran) and complete
        (everything that matched throughout was chosen). A job leaves Running only for good, and no
        job appears on a node while an operation has it, so before and after bound what was there."""
        problems = []
        for job in sorted(chosen):
            b = before.get(job)
            if job not in after:
                problems.append(f"{verb} {job}, which is not on {node}")
            elif b is None or b["removed"]:
                problems.append(f"{verb} {job}, removed before the operation began")
            elif running_only and b["state"] != "Running":
                problems.append(f"{verb} {job} as Running; it was {b['state']} before the operation began")
        for job, b in sorted(before.items()):
            a = after.get(job)
            if b["removed"] or a is None or a["removed"] or job in chosen:
                continue
            if not running_only or (b["state"] == "Running" and a["state"] == "Running"):
                problems.append(f"{verb} no {job} on {node}, there throughout ({_state(b)} before, {_state(a)} after)")
        return problems

    # --- the report ---------------------------------------------------------------------------------------

    def mismatches(self) -> list[str]:
        found = [f"{v.op.describe()}: {m}" for v in self.verdicts for m in v.mismatches]
        return found + self.global_mismatches + [f"resources: {p}" for p in self.run.resources.problems()]

    def table(self) -> dict[str, Counter[str]]:
        rows: dict[str, Counter[str]] = defaultdict(Counter)
        for v in self.verdicts:
            rows[v.fault][v.verdict] += 1
        return dict(rows)

    def summary(self) -> dict[str, Any]:
        run = self.run
        verdicts = Counter(v.verdict for v in self.verdicts)
        planned_not_reached = sum(1 for v in self.verdicts if v.op.fault is not None and v.fault == "none")
        pair = run.resources.memory_early_late
        return {
            "seed": run.config.seed,
            "nodes": run.config.nodes,
            "profiles": len(run.profiles),
            "operations": len(run.plan),
            "library_operations": sum(1 for op in run.plan if op.front == "library"),
            "cli_operations": sum(1 for op in run.plan if op.front == "cli"),
            "commands": dict(Counter(op.command for op in run.plan)),
            "requests": sum(len(_all_requests(r)) for op in run.plan for _, r in op.results),
            "executed_methods": len(run.log),
            "faults_fired": dict(Counter(str(f["kind"]) for f in run.fired)),
            "faults_fired_by_request": dict(Counter(str(f["request"]) for f in run.fired)),
            "faulted_operations": sum(1 for v in self.verdicts if v.fault != "none"),
            "faults_planned_not_reached": planned_not_reached,
            "verdicts": dict(verdicts),
            "table": {k: dict(v) for k, v in sorted(self.table().items())},
            "mismatches": self.mismatches(),
            "wall_seconds": round(run.wall_seconds, 1),
            "resources": {
                "fds_before": run.resources.fds_before,
                "fds_after": run.resources.fds_after,
                "threads_before": run.resources.threads_before,
                "threads_after": run.resources.threads_after,
                "objects_left": run.resources.objects_left,
                "memory_early_late_bytes": list(pair) if pair else None,
            },
        }


def _all_requests(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(result.get("requests") or [])


def _effects(entries: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{e['method']} -> {e['return_value']} ({e['effect']})" for e in entries) or "none"


def _state(truth: Mapping[str, Any] | None) -> str:
    if truth is None:
        return "absent"
    return str(truth["state"]) + (" (removed)" if truth["removed"] else "")


def _short(result: Mapping[str, Any]) -> str:
    return " ".join(f"{q['request']}:{q['outcome']}:{q.get('return_value')}" for q in result.get("requests") or [])


def _exit_code(results: Sequence[Mapping[str, Any]]) -> int:
    """docs/cli.md, "Exit status"."""
    statuses = [r["status"] for r in results]
    if all(s == "ok" for s in statuses):
        return 0
    if "unreachable" in statuses:
        return 3
    failed = [r for r in results if r["status"] == "failed"]
    if all((r.get("error") or {}).get("type") == "wait_timeout" for r in failed):
        return 4
    return 1


def format_table(judge: Judge) -> str:
    """Operations by fault kind (rows) and verdict (columns)."""
    columns = ["changed", "unchanged", "unknown", "gone", "failed", "read", "check", "MISMATCH"]
    rows = judge.table()
    order = ["none", *sorted(k for k in rows if k != "none")]
    width = max([len("fault"), *(len(k) for k in order)])
    lines = [f"{'fault':<{width}}  {'ops':>5}  " + "  ".join(f"{c:>9}" for c in columns)]
    totals: Counter[str] = Counter()
    for kind in order:
        counts = rows.get(kind, Counter())
        totals.update(counts)
        lines.append(f"{kind:<{width}}  {sum(counts.values()):>5}  " + "  ".join(f"{counts[c]:>9}" for c in columns))
    lines.append(f"{'total':<{width}}  {sum(totals.values()):>5}  " + "  ".join(f"{totals[c]:>9}" for c in columns))
    return "\n".join(lines)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No log records during the run: a test's log capture keeps every one (each SOAP envelope)."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def chaos(config: ChaosConfig) -> Judge:
    with quiet():
        return Judge(ChaosRun(config).run()).judge()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = ChaosConfig()
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--operations", type=int, default=defaults.operations, help="library operations")
    parser.add_argument("--cli-operations", type=int, default=defaults.cli_operations)
    parser.add_argument("--nodes", type=int, default=defaults.nodes)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument("--speed", type=float, default=defaults.speed)
    parser.add_argument("--memory", action="store_true", help="trace memory (tracemalloc: twice as slow)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    args = parser.parse_args(argv)
    config = ChaosConfig(
        seed=args.seed,
        operations=args.operations,
        cli_operations=args.cli_operations,
        nodes=args.nodes,
        concurrency=args.concurrency,
        fault_rate=args.fault_rate,
        speed=args.speed,
        trace_memory=args.memory,
    )
    judge = chaos(config)
    summary = judge.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_table(judge))
        for line in summary["mismatches"]:
            print("MISMATCH", line)
    return 1 if summary["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
