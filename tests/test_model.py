"""Model-based test: Hypothesis' stateful testing against a small reference model of the cluster.

Rules add jobs, move the simulated clock, switch the profile, inject faults and call hvjob's
operations (stop, kill, wait, list) on a two-node simulated cluster whose clock stands still
unless moved (waits move it: their ``sleep`` advances the cluster and the model together). The
model is independent of hvjob and of the simulator's code: jobs with a state, an end, a removal
time; a stop's and a kill's effect by the method pages' rules. It applies the mutating requests
hvjob reports having sent, except those the simulator's fault log says a fault stopped before
they ran. Invariants: the simulator's truth equals the model's after every step (so hvjob sent
nothing it did not report, and nothing twice), and every report is one the model allows: exactly
what must happen when no fault fired, and otherwise changed / unchanged / unknown, gone and the
final state as the truth allows.

A fixed budget (``derandomize``, no example database): the same examples on every run, in CI
too (``HVJOB_MODEL_EXAMPLES``, ``HVJOB_MODEL_STEPS`` and ``HVJOB_MODEL_RANDOM`` for a longer hunt). Shrunk failures are kept as explicit tests in tests/test_chaos_regressions.py.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from conftest import CANARY_PASSWORD
from hvjob.jobs import JobClient, JobState, OperationResult
from hvjob.testing.sim import SimulatedCluster
from hvjob.transport import ConnectionOptions, WsmanSession
from hvjob.wire.build import WsmanRequest
from hvjob.wire.parse import Result

NODES = ("HVNODE01", "HVNODE02")
TERMINAL = frozenset({"Completed", "Killed", "Terminated", "Exception", "Completed with Warnings"})
MUTATING = frozenset({"KillJob", "RequestStateChange"})
TRANSITION_SECONDS = 2.0  # the simulator's default transition_seconds (async stops pass Shutting Down)
#: Faults the rules inject, as the simulator's fault kinds (docs/testing.md).
FAULTS: dict[str, dict[str, Any]] = {
    "drop_before_execute": {"kind": "drop_before_execute"},
    "drop_after_execute": {"kind": "drop_after_execute"},
    "timeout": {"kind": "timeout"},
    "quota": {"kind": "fault", "fault": "quota"},
    "close_mid_response": {"kind": "close", "close": "mid_response"},
    "malformed": {"kind": "body", "body": "malformed"},
}
#: Fault kinds (as the fault log names them) after which the request did not run.
NOT_RUN = frozenset({"drop_before_execute", "fault"})
#: ... and those that hid the answer from hvjob.
HIDING = frozenset({"drop_before_execute", "drop_after_execute", "timeout", "close", "body"})


# --- the reference model --------------------------------------------------------------------------


@dataclass
class ModelJob:
    id: str
    node: str
    state: str  # Running, Shutting Down, or a terminal state's name
    ends_at: float | None  # a Running job's own end (Completed)
    cancellable: bool
    delete_on_completion: bool
    time_before_removal: float
    finished_at: float | None = None
    removed: bool = False
    transition: float | None = None  # Shutting Down: when it becomes Killed
    delete_when_final: bool | None = None  # KillJob's DeleteOnKill, which wins over DeleteOnCompletion

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def settle(self, now: float) -> None:
        """Every event due by ``now``, each at its own time (the job's end, a transition, removal)."""
        while True:
            if self.removed:
                return
            if self.transition is not None and self.transition <= now:
                at, self.transition = self.transition, None
                self.finish("Killed", at)
            elif self.state == "Running" and self.ends_at is not None and self.ends_at <= now:
                self.finish("Completed", self.ends_at)
            elif self.finished_at is not None and self.finished_at + self.time_before_removal <= now:
                self.removed = True
            else:
                return

    def finish(self, state: str, at: float) -> None:
        self.state, self.finished_at, self.ends_at = state, at, None
        delete = self.delete_when_final if self.delete_when_final is not None else self.delete_on_completion
        if delete:
            self.removed = True

    def stop_method(self, method: str, now: float, mode: str) -> int:
        """What the node does with RequestStateChange(5) or KillJob(False): the return value."""
        if self.removed:
            raise AssertionError("a method reached a removed job: hvjob would have had a fault")
        if self.terminal or not self.cancellable:
            return 32775  # Invalid State (Hyper-V), for both methods
        if method == "KillJob":
            self.delete_when_final = False
            self.transition = None
            self.finish("Killed", now)
            return 0
        if mode == "sync":
            self.finish("Killed", now)
            return 0
        if self.state == "Running":
            self.state, self.ends_at = "Shutting Down", None
            self.transition = now + TRANSITION_SECONDS
        return 4096


class Model:
    def __init__(self) -> None:
        self.now = 0.0
        self.jobs: dict[str, ModelJob] = {}
        self.mode = "sync"

    def settle(self) -> None:
        for job in self.jobs.values():
            job.settle(self.now)

    def visible(self, job_id: str, node: str) -> ModelJob | None:
        job = self.jobs.get(job_id)
        return job if job is not None and job.node == node and not job.removed else None


# --- the machine --------------------------------------------------------------------------------------


class TimedSession(WsmanSession):
    """The real session; it notes the model's time as each request leaves (a wait's polls move the
    clock between requests, and the model applies each method at the time it was sent)."""

    def __init__(self, url: str, options: ConnectionOptions, clock: Callable[[], float]) -> None:
        super().__init__(url, options)
        self.clock = clock
        self.sent_at: dict[str, float] = {}

    def send(self, request: WsmanRequest) -> Result:
        if request.message_id is not None:
            self.sent_at[request.message_id] = self.clock()
        return super().send(request)


class ClusterMachine(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.cluster = SimulatedCluster(
            nodes=list(NODES), jobs=[], username="alice", password=CANARY_PASSWORD, users_file=USERS[0], speed=0
        ).start()
        options = ConnectionOptions(
            username="alice",
            password=CANARY_PASSWORD,
            scheme="http",
            operation_timeout=5,
            read_timeout_margin=2,
            connect_timeout=5,
        )
        self.sessions = {node: TimedSession(self.cluster.url(node), options, self._now) for node in NODES}
        self.ids = (f"0D2F0000-0000-4000-8000-{n:012d}" for n in itertools.count(1))
        self.fired_seen = 0
        self.log_seen = 0

    def teardown(self) -> None:
        for session in self.sessions.values():
            session.close()
        self.cluster.stop()

    def _now(self) -> float:
        return self.model.now

    def _sleep(self, seconds: float) -> None:
        """A wait's pause: the cluster's clock and the model's move together, nothing sleeps."""
        self.cluster.advance(seconds)
        self.model.now += seconds

    def client(self, node: str, *, check: bool = False) -> JobClient:
        return JobClient(self.sessions[node], sleep=self._sleep, check=check, poll_initial=1.0, poll_max=8.0)

    # --- the world ------------------------------------------------------------------------------------

    @initialize()
    def profile_at_start(self) -> None:
        self.cluster.set_profile(request_state_change="sync")

    @rule(
        target=jobs,
        node=st.sampled_from(NODES),
        runs_for=st.one_of(st.none(), st.integers(1, 300)),
        cancellable=st.booleans() | st.just(True),
        delete_on_completion=st.booleans(),
        time_before_removal=st.integers(1, 400),
    )
    def add_job(
        self, node: str, runs_for: int | None, cancellable: bool, delete_on_completion: bool, time_before_removal: int
    ) -> str:
        job_id = next(self.ids)
        self.cluster.add_job(
            id=job_id,
            node=node,
            runs_for=runs_for,
            cancellable=cancellable,
            delete_on_completion=delete_on_completion,
            time_before_removal=time_before_removal,
        )
        ends = self.model.now + runs_for if runs_for is not None else None
        self.model.jobs[job_id] = ModelJob(
            job_id, node, "Running", ends, cancellable, delete_on_completion, float(time_before_removal)
        )
        return job_id

    @rule(seconds=st.sampled_from([0.5, 1, 2, 5, 30, 120, 400]))
    def advance(self, seconds: float) -> None:
        self.cluster.advance(seconds)
        self.model.now += seconds

    @rule(mode=st.sampled_from(["sync", "async"]))
    def switch_profile(self, mode: str) -> None:
        self.cluster.set_profile(request_state_change=mode)
        self.model.mode = mode

    @rule(
        node=st.sampled_from(NODES),
        method=st.sampled_from(["Get", "RequestStateChange", "KillJob", "Enumerate"]),
        fault=st.sampled_from(sorted(FAULTS)),
    )
    def inject(self, node: str, method: str, fault: str) -> None:
        self.cluster.inject(node=node, method=method, **FAULTS[fault])

    # --- hvjob's operations -------------------------------------------------------------------------------

    @rule(job=jobs | st.just("0D2F0000-0000-4000-8000-00000000FFFF"), node=st.sampled_from(NODES),
          wait=st.booleans(), check=st.booleans())  # fmt: skip
    def stop(self, job: str, node: str, wait: bool, check: bool) -> None:
        before = self._before(job, node)
        result = self.client(node, check=check).stop(job, wait=wait, timeout=600)
        self._judge("stop", node, job, result, before, check=check, wait=wait)

    @rule(job=jobs | st.just("0D2F0000-0000-4000-8000-00000000FFFF"), node=st.sampled_from(NODES),
          missing_ok=st.booleans())  # fmt: skip
    def kill(self, job: str, node: str, missing_ok: bool) -> None:
        before = self._before(job, node)
        result = self.client(node).kill(job, missing_ok=missing_ok)
        self._judge("kill", node, job, result, before, missing_ok=missing_ok)

    @rule(job=jobs, node=st.sampled_from(NODES))
    def wait(self, job: str, node: str) -> None:
        before = self._before(job, node)
        model_job = self.model.visible(job, node)
        ends = model_job is not None and (model_job.terminal or model_job.ends_at is not None or model_job.transition)
        timeout = 600.0 if ends else 0.0  # a job that never ends by itself is read once, and still runs
        result = self.client(node).wait(job, timeout=timeout)
        self._judge("wait", node, job, result, before, timeout=timeout)

    @rule(node=st.sampled_from(NODES), running=st.booleans())
    def list_jobs(self, node: str, running: bool) -> None:
        self.model.settle()
        expected = {
            j.id
            for j in self.model.jobs.values()
            if j.node == node and not j.removed and (not running or j.state == "Running")
        }
        result = self.client(node).list([JobState.RUNNING] if running else None)
        fired = self._fired()
        listed = {str(j["InstanceID"]) for j in result.jobs or []}
        if not fired:
            assert result.ok and listed == expected, (result.to_dict(), expected)
        elif result.ok:
            assert listed == expected, (result.to_dict(), expected, fired)
        self._applied(node, result, fired)

    # --- what the model allows -------------------------------------------------------------------------

    def _before(self, job: str, node: str) -> ModelJob | None:
        self.model.settle()
        found = self.model.visible(job, node)
        return None if found is None else ModelJob(**found.__dict__)

    def _fired(self) -> list[dict[str, Any]]:
        log = self.cluster.fault_log()
        fired, self.fired_seen = log[self.fired_seen :], len(log)
        return fired

    def _applied(
        self, node: str, result: OperationResult, fired: Sequence[dict[str, Any]]
    ) -> list[tuple[str, int, bool]]:
        """Apply to the model each mutating request hvjob reports sending, unless a fault stopped it
        first or the node has no such job (a not-found fault); (method, the model's return value,
        whether its answer was hidden) for each that ran."""
        by_mid = {f["message_id"]: f for f in fired}
        ran = []
        for request in result.requests:
            if request.request not in MUTATING:
                continue
            fault = by_mid.get(request.message_id)
            if fault is not None and fault["kind"] in NOT_RUN:
                continue
            at = self.sessions[node].sent_at[str(request.message_id)]
            job = self.model.jobs.get(request.job or "")
            if job is not None:
                job.settle(at)  # as it was when the method reached the node
            if job is None or job.removed or job.node != node:
                continue  # the node has no such job: a not-found fault, nothing ran
            value = job.stop_method(request.request, at, self.model.mode)
            ran.append((request.request, value, fault is not None and fault["kind"] in HIDING))
        log = self.cluster.log()
        executed, self.log_seen = log[self.log_seen :], len(log)
        assert [(e["method"], e["return_value"]) for e in executed] == [(m, v) for m, v, _ in ran], (executed, ran)
        return ran

    def _judge(
        self,
        command: str,
        node: str,
        job_id: str,
        result: OperationResult,
        before: ModelJob | None,
        *,
        check: bool = False,
        wait: bool = False,
        missing_ok: bool = True,
        timeout: float = 0.0,
    ) -> None:
        fired = self._fired()
        ran = self._applied(node, result, fired)
        self.model.settle()
        after = self.model.jobs.get(job_id)
        report = (command, node, job_id, result.to_dict(), before, after, fired)
        sent = [r for r in result.requests if r.request in MUTATING]
        accepted = [v for m, v, hidden in ran if not hidden and (v == 0 or (m == "RequestStateChange" and v == 4096))]
        # Whatever fired: changed is what the node accepted, unknown only behind a fault that hid it.
        if check:
            assert sent == [] and result.changed is False, report
        elif result.changed is True:
            assert len([v for _, v, _ in ran if v in (0, 4096)]) == 1, report
        elif result.changed is False:
            assert all(v not in (0, 4096) for _, v, _ in ran), report
        else:  # unknown: some mutating request's answer was hidden, whether the method ran or not
            assert any(f["kind"] in HIDING and f["message_id"] in {r.message_id for r in sent} for f in fired), report
        if accepted and not check:
            assert result.changed is True, report
        if result.gone:
            assert after is None or after.removed or after.node != node, report
        if result.job_state is not None and result.job_state.is_terminal:
            assert after is not None and result.job_state.label == after.state, report
        if fired:
            return
        # No fault fired: exactly what must happen.
        if command == "stop":
            assert before is None or before.node == node
            if before is None:
                assert result.ok and result.gone and result.changed is False and sent == [], report
            elif before.terminal:
                assert result.ok and result.changed is False and sent == [], report
                assert result.job_state is not None and result.job_state.label == before.state, report
            elif before.state == "Shutting Down":
                assert result.ok and result.changed is False and sent == [], report
            elif not before.cancellable:
                assert result.error is not None and result.error.type == "method" and sent == [], report
            elif check:  # nothing sent, so nothing changed; a real run would
                assert result.ok and result.changed is False and result.would_change is True, report
            else:
                assert result.ok and result.changed is True and [r.request for r in sent] == ["RequestStateChange"]
                assert after is not None and (after.terminal or (not wait and after.state == "Shutting Down")), report
        elif command == "kill":
            if before is None:
                assert result.gone and result.changed is False and result.ok == missing_ok, report
            elif before.terminal or not before.cancellable:
                assert result.error is not None and result.return_value == 32775 and result.changed is False, report
            else:
                assert result.ok and result.changed is True and result.return_value == 0, report
                assert after is not None and after.state == "Killed", report
        elif command == "wait":
            if before is None:
                assert result.gone and result.error is not None and result.error.type == "wsman_fault", report
            elif timeout == 0 and not before.terminal:
                assert result.error is not None and result.error.type == "wait_timeout", report
                assert result.job_state is not None and result.job_state.label == before.state, report
            elif result.gone:
                assert result.ok and after is not None and after.removed, report  # seen, then removed
            else:
                assert result.ok and after is not None and result.job_state is not None, report
                assert result.job_state.label == after.state and after.terminal, report

    # --- the truth is the model's ---------------------------------------------------------------------

    @invariant()
    def the_truth_is_the_models(self) -> None:
        self.model.settle()
        truth = {j["id"]: j for j in self.cluster.jobs() if j["class"] == "Msvm_CollectionReferencePointExportJob"}
        assert set(truth) == set(self.model.jobs)
        for job_id, job in self.model.jobs.items():
            seen = truth[job_id]
            assert (seen["state"], seen["removed"]) == (job.state, job.removed), (job_id, seen, job)


USERS: list[Path] = []  # the session's users file, for machines Hypothesis constructs itself


@pytest.fixture(autouse=True)
def _users(users_file: Path) -> Iterator[None]:
    USERS[:] = [users_file]
    yield
    USERS.clear()


#: The CI budget; ``HVJOB_MODEL_EXAMPLES=2000 HVJOB_MODEL_RANDOM=1`` for a longer hunt with fresh examples.
ClusterMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("HVJOB_MODEL_EXAMPLES", "150")),
    stateful_step_count=int(os.environ.get("HVJOB_MODEL_STEPS", "25")),
    derandomize=not os.environ.get("HVJOB_MODEL_RANDOM"),  # the same examples on every run
    database=None,  # nothing kept between runs: CI has no example database to trust
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TestClusterMachine = ClusterMachine.TestCase
