"""The simulated cluster's state: nodes, jobs that change with time and calls, the method log.

No XML here (moto's ``models.py`` habit): the WS-Man layer (:mod:`hvjob.testing.sim.wsman`) reads
and changes this model and renders it. Time is the simulated clock's seconds; the model is
settled lazily, before each request, by replaying every event due since the last one in order
(a job ending on its own, a Shutting Down job reaching its final state, a finished job removed
after TimeBeforeRemoval), each at the simulated time it was due.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hvjob.jobs import TERMINAL_STATES, JobState
from hvjob.testing.sim.clock import Clock
from hvjob.testing.sim.profile import Profile

CLUSTER_NAMESPACE = "root/HyperVCluster/v2"
LOCAL_NAMESPACE = "root/virtualization/v2"
MSCLUSTER_NAMESPACE = "root/MSCluster"
#: The namespaces the simulator answers, in their canonical spelling (WMI folds case).
NAMESPACES = (CLUSTER_NAMESPACE, LOCAL_NAMESPACE, MSCLUSTER_NAMESPACE)

EXPORT_JOB = "Msvm_CollectionReferencePointExportJob"
CONCRETE_JOB = "Msvm_ConcreteJob"
MIGRATION_JOB = "Msvm_MigrationJob"
JOB_CLASSES = (EXPORT_JOB, CONCRETE_JOB, MIGRATION_JOB)
SERVICE_CLASS = "Msvm_CollectionReferencePointService"

#: Each class and what it derives from, so that a WQL query of a parent class finds its children.
PARENTS: dict[str, str | None] = {
    EXPORT_JOB: "CIM_ConcreteJob",
    CONCRETE_JOB: "CIM_ConcreteJob",
    MIGRATION_JOB: "CIM_ConcreteJob",
    "CIM_ConcreteJob": "CIM_Job",
    "CIM_Job": "CIM_LogicalElement",
    "CIM_LogicalElement": "CIM_ManagedSystemElement",
    "CIM_ManagedSystemElement": "CIM_ManagedElement",
    "CIM_ManagedElement": None,
    SERVICE_CLASS: "CIM_Service",
    "CIM_Service": "CIM_EnabledLogicalElement",
    "CIM_EnabledLogicalElement": "CIM_LogicalElement",
    "MSCluster_Cluster": None,
    "MSCluster_Node": None,
}
#: Which classes each namespace holds.
NAMESPACE_CLASSES: dict[str, tuple[str, ...]] = {
    CLUSTER_NAMESPACE: (*JOB_CLASSES, SERVICE_CLASS, "CIM_ConcreteJob", "CIM_Job"),
    LOCAL_NAMESPACE: (*JOB_CLASSES, "CIM_ConcreteJob", "CIM_Job"),
    MSCLUSTER_NAMESPACE: ("MSCluster_Cluster", "MSCluster_Node"),
}

DEFAULT_DESCRIPTIONS = {
    EXPORT_JOB: ("Export Collection Reference Point", "Exporting a collection reference point"),
    CONCRETE_JOB: ("Hyper-V job", "A job of the Virtual Machine Management Service"),
    MIGRATION_JOB: ("Virtual machine migration", "Migrating a virtual machine"),
}

#: JobStatus text per state (Hyper-V's wording is not documented; these follow the JobState names).
JOB_STATUS = {
    JobState.NEW: "Job is new",
    JobState.STARTING: "Job is starting",
    JobState.RUNNING: "Job is running",
    JobState.SUSPENDED: "Job is suspended",
    JobState.SHUTTING_DOWN: "Job is stopping",
    JobState.COMPLETED: "Job completed successfully",
    JobState.TERMINATED: "Job was terminated",
    JobState.KILLED: "Job was killed",
    JobState.EXCEPTION: "Job failed",
    JobState.SERVICE: "Job is in service",
    JobState.QUERY_PENDING: "Job is waiting",
    JobState.COMPLETED_WITH_WARNINGS: "Job completed with warnings",
}
DEFAULT_ERROR_CODE = 32768
DEFAULT_ERROR_DESCRIPTION = "The operation failed."
DEFAULT_TIME_BEFORE_REMOVAL = 300.0  # CIM_ConcreteJob: "00000000000500.000000:000", five minutes


def canonical_namespace(name: str) -> str | None:
    """``ROOT\\hypervcluster\\V2`` -> ``root/HyperVCluster/v2``; None for a namespace not simulated."""
    folded = name.replace("\\", "/").strip("/").lower()
    return next((n for n in NAMESPACES if n.lower() == folded), None)


def canonical_class(name: str) -> str | None:
    folded = name.lower()
    return next((c for c in PARENTS if c.lower() == folded), None)


def is_a(class_name: str, ancestor: str) -> bool:
    current: str | None = class_name
    while current is not None:
        if current.lower() == ancestor.lower():
            return True
        current = PARENTS.get(current)
    return False


@dataclass(frozen=True)
class JobSpec:
    """A job as the cluster file, ``POST /_hvjob/jobs`` and ``SimulatedCluster.add_job`` give it."""

    id: str
    node: str
    class_name: str = EXPORT_JOB
    namespace: str = CLUSTER_NAMESPACE
    state: JobState = JobState.RUNNING
    percent: int = 0
    runs_for: float | None = None
    ends: JobState = JobState.COMPLETED
    error_code: int | None = None
    error_description: str | None = None
    cancellable: bool = True
    delete_on_completion: bool = False
    time_before_removal: float = DEFAULT_TIME_BEFORE_REMOVAL
    elapsed: float = 0.0  # seconds it had already run when it entered the model
    name: str | None = None
    owner: str | None = None
    export_directory: str | None = None
    collection_id: str | None = None
    reference_point_group_id: str | None = None
    virtual_machine_ids: tuple[str, ...] = ()
    job_type: int | None = None
    migration_type: int | None = None
    destination_host: str | None = None
    virtual_system_name: str | None = None


@dataclass
class SimJob:
    """One job instance and its history in simulated seconds."""

    spec: JobSpec
    id: str
    node: str
    class_name: str
    namespace: str
    state: JobState
    submitted_at: float
    started_at: float | None
    state_changed_at: float
    progress_from: float  # when PercentComplete was last pinned
    percent_base: float  # PercentComplete at progress_from
    ends_at: float | None  # a running job's own end
    ends: JobState
    error_code: int = 0
    error_description: str | None = None
    cancellable: bool = True
    delete_on_completion: bool = False
    time_before_removal: float = DEFAULT_TIME_BEFORE_REMOVAL
    finished_at: float | None = None
    removed_at: float | None = None
    removal: str | None = None  # why it is gone: time_before_removal, delete_on_completion, delete_on_kill
    transition: tuple[JobState, float] | None = None  # Shutting Down: (final state, when)
    delete_when_final: bool | None = None  # KillJob's DeleteOnKill, which takes precedence
    tracks: str | None = None  # a tracker Msvm_ConcreteJob: the job whose state change it follows
    trackers: list[str] = field(default_factory=list)  # the trackers following this job
    frozen_percent: int | None = None

    @property
    def removed(self) -> bool:
        return self.removed_at is not None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def percent(self, now: float) -> int:
        if self.frozen_percent is not None:
            return self.frozen_percent
        if self.state != JobState.RUNNING or self.ends_at is None:
            return round(self.percent_base)
        span = self.ends_at - self.progress_from
        done = 1.0 if span <= 0 else min(1.0, max(0.0, (now - self.progress_from) / span))
        return min(99, int(self.percent_base + (100 - self.percent_base) * done))

    def elapsed(self, now: float) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else now
        return max(0.0, end - self.started_at)

    def next_event(self) -> float | None:
        """When this job next changes by itself, or None."""
        if self.removed:
            return None
        if self.transition is not None:
            return self.transition[1]
        if self.state == JobState.RUNNING and self.ends_at is not None:
            return self.ends_at
        if self.finished_at is not None and not self.removed:
            return self.finished_at + self.time_before_removal
        return None


@dataclass
class LogEntry:
    """One method the simulated provider executed, in the order executed.

    ``answer``: ``sent`` (the reply went out as rendered), ``dropped`` (the connection was closed
    before it), ``timed_out`` (w:TimedOut was sent although the method ran), ``altered`` (an
    injected fault changed it). ``effect`` says what the method changed, or None.
    """

    seq: int
    time: float
    node: str
    method: str
    class_name: str
    namespace: str
    job: str | None
    parameters: dict[str, Any]
    return_value: int | None
    out: dict[str, Any]
    effect: str | None
    fault: str | None
    message_id: str | None
    user: str | None
    answer: str = "sent"


@dataclass
class FaultRule:
    """A fault waiting for matching requests (``POST /_hvjob/faults``); ``count`` uses left, after
    letting ``skip`` matching requests pass (the third Get of a wait, not the first)."""

    kind: str
    count: int
    node: str | None = None
    method: str | None = None
    job: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    skip: int = 0

    def matches(self, node: str, method: str, job: str | None) -> bool:
        if self.node is not None and self.node.lower() != node.lower():
            return False
        if self.method is not None and self.method not in ("*", "any") and self.method.lower() != method.lower():
            return False
        return self.job is None or (job is not None and self.job.lower() == job.lower())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "node": self.node,
            "method": self.method,
            "job": self.job,
            **({"skip": self.skip} if self.skip else {}),
            **self.fields,
        }


@dataclass(frozen=True)
class FiredFault:
    """One use of an injected fault: which request it spoiled (matched to hvjob's results by
    ``message_id``, as the method log is)."""

    seq: int
    time: float
    node: str
    request: str  # Get, Enumerate, Pull, Release, or the method name
    job: str | None
    kind: str
    fields: dict[str, Any]
    message_id: str | None


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    nodes: tuple[str, ...]
    jobs: tuple[JobSpec, ...] = ()
    speed: float = 1.0
    profile: Profile = field(default_factory=Profile)
    start: dt.datetime | None = None
    source: str | None = None  # the cluster file it came from


@dataclass
class Enumeration:
    node: str
    items: list[tuple[str, str, dict[str, Any]]]  # (class, namespace, properties) still to send
    fragment: tuple[str, ...] | None  # WQL property list: items go out as w:XmlFragment
    expires: float


class ClusterModel:
    """Nodes, jobs, the method log and pending faults of one simulated cluster.

    Every public method takes the lock; the WS-Man layer holds it across one request (settle,
    execute, read) so that what a request sees is consistent.
    """

    def __init__(self, spec: ClusterSpec, clock: Clock | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.nodes = list(spec.nodes)
        self.clock = clock or Clock(spec.speed, spec.start)
        self.profile = spec.profile
        self.lock = threading.RLock()
        self.jobs: dict[str, SimJob] = {}  # lower-cased InstanceID -> job (WMI compares keys case-insensitively)
        self.log: list[LogEntry] = []
        self.faults: list[FaultRule] = []
        self.fired: list[FiredFault] = []  # every use of a fault, in order
        self.enumerations: dict[str, Enumeration] = {}
        self.urls: dict[str, str] = {}  # node -> listener URL, set by whoever runs the listeners
        self._seq = itertools.count(1)
        self._fault_seq = itertools.count(1)
        self._fired_seq = itertools.count(1)
        self._tracker_seq = itertools.count(1)
        for job in spec.jobs:
            self.add_job(job)

    # --- jobs ------------------------------------------------------------------------------------

    def node_name(self, name: str) -> str | None:
        return next((n for n in self.nodes if n.lower() == name.lower()), None)

    def add_job(self, spec: JobSpec, *, now: float | None = None) -> SimJob:
        with self.lock:
            if spec.id.lower() in self.jobs and not self.jobs[spec.id.lower()].removed:
                raise ValueError(f"job {spec.id} exists already")
            node = self.node_name(spec.node)
            if node is None:
                raise ValueError(f"node {spec.node!r} is not a node of {self.name}")
            t = self.clock.now() if now is None else now
            started = None if spec.state == JobState.NEW else t - spec.elapsed
            job = SimJob(
                spec=spec,
                id=spec.id,
                node=node,
                class_name=spec.class_name,
                namespace=spec.namespace,
                state=spec.state,
                submitted_at=(started if started is not None else t) - 0.5,
                started_at=started,
                state_changed_at=t,
                progress_from=t,
                percent_base=float(spec.percent),
                ends_at=t + spec.runs_for if spec.runs_for is not None and spec.state == JobState.RUNNING else None,
                ends=spec.ends,
                cancellable=spec.cancellable,
                delete_on_completion=spec.delete_on_completion,
                time_before_removal=spec.time_before_removal,
            )
            if spec.state in TERMINAL_STATES:
                job.finished_at = t
                job.frozen_percent = 100 if spec.state in _SUCCESS else spec.percent
            if spec.state in (JobState.EXCEPTION,) or spec.error_code:
                job.error_code = spec.error_code if spec.error_code is not None else DEFAULT_ERROR_CODE
                job.error_description = spec.error_description or DEFAULT_ERROR_DESCRIPTION
            self.jobs[spec.id.lower()] = job
            return job

    def find(self, job_id: str) -> SimJob | None:
        return self.jobs.get(job_id.lower())

    def visible_on(self, job: SimJob, node: str) -> bool:
        """Whether ``node``'s listener shows ``job`` (the ``jobs_visible_on`` switch)."""
        if job.removed:
            return False
        if job.node.lower() == node.lower():
            return True
        return self.profile.jobs_visible_on == "every-node" and job.namespace == CLUSTER_NAMESPACE

    def jobs_on(self, node: str, namespace: str) -> list[SimJob]:
        return [j for j in self.jobs.values() if j.namespace == namespace and self.visible_on(j, node)]

    # --- time ------------------------------------------------------------------------------------

    def settle(self) -> float:
        """Apply every event due by now to every job (jobs change independently); returns now."""
        with self.lock:
            now = self.clock.now()
            for job in self.jobs.values():
                self.settle_job(job, now)
            return now

    def settle_job(self, job: SimJob, now: float) -> SimJob:
        """Apply ``job``'s own events due by ``now``, each at the time it was due."""
        while (at := job.next_event()) is not None and at <= now:
            self._fire(job, at)
        return job

    def _fire(self, job: SimJob, at: float) -> None:
        if job.transition is not None and job.transition[1] <= at:
            final, _ = job.transition
            job.transition = None
            self.finish(job, final, at)
        elif job.state == JobState.RUNNING and job.ends_at is not None and job.ends_at <= at:
            self.finish(job, job.ends, at)
        elif job.finished_at is not None and job.finished_at + job.time_before_removal <= at:
            self.remove(job, at, "time_before_removal")

    def finish(self, job: SimJob, state: JobState, at: float) -> None:
        """``job`` reaches the terminal ``state`` at ``at``; DeleteOnKill or DeleteOnCompletion may remove it."""
        if job.frozen_percent is None:
            job.frozen_percent = 100 if state in _SUCCESS else job.percent(at)
        job.state = state
        job.state_changed_at = at
        job.finished_at = at
        job.ends_at = None
        if state == JobState.EXCEPTION and not job.error_code:
            job.error_code = job.spec.error_code or DEFAULT_ERROR_CODE
            job.error_description = job.spec.error_description or DEFAULT_ERROR_DESCRIPTION
        delete = job.delete_when_final if job.delete_when_final is not None else job.delete_on_completion
        if delete:
            self.remove(job, at, "delete_on_kill" if job.delete_when_final else "delete_on_completion")
        for tracker_id in job.trackers:
            tracker = self.jobs.get(tracker_id.lower())
            if tracker is not None and not tracker.terminal:
                self.finish(tracker, JobState.COMPLETED, at)

    def remove(self, job: SimJob, at: float, why: str) -> None:
        job.removed_at = at
        job.removal = why

    def begin_transition(self, job: SimJob, final: JobState, at: float) -> None:
        """An asynchronous stop: the job passes Shutting Down for ``transition_seconds``."""
        if job.state == JobState.RUNNING:
            job.frozen_percent = job.percent(at)
        job.state = JobState.SHUTTING_DOWN
        job.state_changed_at = at
        job.ends_at = None
        job.transition = (final, at + self.profile.transition_seconds)

    def add_tracker(self, job: SimJob, at: float, description: str) -> SimJob:
        """An Msvm_ConcreteJob that follows ``job``'s state change and completes with it."""
        number = next(self._tracker_seq)
        spec = JobSpec(
            # A GUID of its own, as Hyper-V gives, derived so that a run is repeatable; none that
            # starts like another job's id (which would read as that job's).
            id=str(uuid.uuid5(_TRACKER_IDS, f"{job.id}/{number}")).upper(),
            node=job.node,
            class_name=CONCRETE_JOB,
            namespace=job.namespace,
            name=description,
            owner=job.spec.owner,
            job_type=0,
        )
        while spec.id.lower() in self.jobs:
            spec = JobSpec(**{**spec.__dict__, "id": f"{spec.id}-{next(self._tracker_seq)}"})
        tracker = self.add_job(spec, now=at)
        tracker.tracks = job.id
        job.trackers.append(tracker.id)
        if job.transition is not None:
            tracker.ends_at = job.transition[1]
            tracker.ends = JobState.COMPLETED
        return tracker

    # --- log and faults --------------------------------------------------------------------------

    def record(self, **fields: Any) -> LogEntry:
        with self.lock:
            entry = LogEntry(seq=next(self._seq), time=self.clock.now(), **fields)
            self.log.append(entry)
            return entry

    def add_fault(self, rule: FaultRule) -> FaultRule:
        with self.lock:
            rule.seq = next(self._fault_seq)
            self.faults.append(rule)
            return rule

    def take_fault(self, node: str, method: str, job: str | None, message_id: str | None = None) -> FaultRule | None:
        """The first pending fault matching this request, one use consumed (and recorded in ``fired``)."""
        with self.lock:
            for rule in self.faults:
                if rule.count > 0 and rule.matches(node, method, job):
                    if rule.skip > 0:
                        rule.skip -= 1  # this one passes; a later rule may still take it
                        continue
                    rule.count -= 1
                    if rule.count == 0:
                        self.faults.remove(rule)
                    seq, at = next(self._fired_seq), self.clock.now()
                    self.fired.append(FiredFault(seq, at, node, method, job, rule.kind, dict(rule.fields), message_id))
                    return rule
            return None

    def clear_faults(self, node: str | None = None) -> int:
        """Drop the pending faults (of ``node`` only, if given: those that name it); how many."""
        with self.lock:
            kept = [r for r in self.faults if node is not None and (r.node or "").lower() != node.lower()]
            cleared = len(self.faults) - len(kept)
            self.faults = kept
            return cleared

    def fault_log_dicts(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    "seq": f.seq,
                    "time": self.clock.datetime_at(f.time).isoformat(),
                    "node": f.node,
                    "request": f.request,
                    "job": f.job,
                    "kind": f.kind,
                    "message_id": f.message_id,
                    **f.fields,
                }
                for f in self.fired
            ]

    # --- ground truth ----------------------------------------------------------------------------

    def job_truth(self, job: SimJob, now: float) -> dict[str, Any]:
        return {
            "id": job.id,
            "node": job.node,
            "class": job.class_name,
            "namespace": job.namespace,
            "state": job.state.label,
            "job_state": int(job.state),
            "percent": job.percent(now),
            "removed": job.removed,
            "removal": job.removal,
            "cancellable": job.cancellable,
            "error_code": job.error_code,
            "tracks": job.tracks,
            "time_of_last_state_change": self.clock.datetime_at(job.state_changed_at).isoformat(),
        }

    def truth(self, node: str | None = None) -> list[dict[str, Any]]:
        """Every job (of ``node`` only, if given), settled to now."""
        with self.lock:
            now = self.clock.now()
            chosen = [job for job in self.jobs.values() if node is None or job.node == node]
            return [self.job_truth(self.settle_job(job, now), now) for job in chosen]

    def log_dicts(self) -> list[dict[str, Any]]:
        with self.lock:
            return [log_dict(entry, self.clock) for entry in self.log]

    def reset(self) -> None:
        """Back to the spec's jobs and profile at time zero; log, faults and enumerations cleared."""
        with self.lock:
            self.clock.reset()
            self.profile = self.spec.profile
            self.jobs.clear()
            self.log.clear()
            self.faults.clear()
            self.fired.clear()
            self.enumerations.clear()
            self._seq = itertools.count(1)
            self._fired_seq = itertools.count(1)
            self._tracker_seq = itertools.count(1)
            for job in self.spec.jobs:
                self.add_job(job)


_SUCCESS = frozenset({JobState.COMPLETED, JobState.COMPLETED_WITH_WARNINGS})
_TRACKER_IDS = uuid.UUID("6f1c2b0e-5d43-4c8a-9e7b-2a1d0c3b4e5f")  # the namespace of tracking jobs' ids


def log_dict(entry: LogEntry, clock: Clock) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "time": clock.datetime_at(entry.time).isoformat(),
        "node": entry.node,
        "method": entry.method,
        "class": entry.class_name,
        "namespace": entry.namespace,
        "job": entry.job,
        "parameters": entry.parameters,
        "return_value": entry.return_value,
        "out": entry.out,
        "effect": entry.effect,
        "fault": entry.fault,
        "message_id": entry.message_id,
        "user": entry.user,
        "answer": entry.answer,
    }


def state_of(name: object) -> JobState:
    """A JobState from its name or number (``Running``, ``shutting-down``, ``4``)."""
    if isinstance(name, JobState):
        return name
    if isinstance(name, int) and not isinstance(name, bool):
        return JobState(name)
    return JobState.parse(str(name))


def fold(items: Iterable[str]) -> Mapping[str, str]:
    return {item.lower(): item for item in items}


# --- instances: every documented property, as Python values (rendered by the WS-Man layer) ----------


def _status(state: JobState) -> tuple[list[int], list[str], str, int]:
    """OperationalStatus, StatusDescriptions, Status and HealthState consistent with ``state``."""
    if state == JobState.EXCEPTION:
        return [6, 17], ["Error", "Completed"], "Error", 20
    if state in _SUCCESS:
        return [2, 17], ["OK", "Completed"], "OK", 5
    if state in (JobState.KILLED, JobState.TERMINATED):
        return [10, 17], ["Stopped", "Completed"], "Stopped", 5
    if state == JobState.SHUTTING_DOWN:
        return [9], ["Stopping"], "Stopping", 5
    if state in (JobState.NEW, JobState.STARTING):
        return [8], ["Starting"], "Starting", 5
    return [2], ["OK"], "OK", 5


def job_properties(model: ClusterModel, job: SimJob, now: float) -> dict[str, Any]:
    """Every property ``job``'s class documents (hvjob.wire.schema.CLASSES), None where Hyper-V leaves it null."""
    clock, spec = model.clock, job.spec
    caption, description = DEFAULT_DESCRIPTIONS.get(job.class_name, ("Job", "A job"))
    name = spec.name or caption
    operational, descriptions, status, health = _status(job.state)
    failed = job.state == JobState.EXCEPTION or bool(job.error_code and job.terminal)
    props: dict[str, Any] = {
        "Caption": caption,
        "Description": description,
        "ElementName": name,
        "InstallDate": None,
        "OperationalStatus": operational,
        "StatusDescriptions": descriptions,
        "Status": status,
        "HealthState": health,
        "CommunicationStatus": None,
        "DetailedStatus": None,
        "OperatingStatus": None,
        "PrimaryStatus": None,
        "JobStatus": JOB_STATUS.get(job.state, "Job status unknown"),
        "TimeSubmitted": clock.datetime_at(job.submitted_at),
        "ScheduledStartTime": None,
        "StartTime": clock.datetime_at(job.started_at) if job.started_at is not None else None,
        "ElapsedTime": dt.timedelta(seconds=round(job.elapsed(now), 6)),
        "JobRunTimes": 1,
        "RunMonth": None,
        "RunDay": None,
        "RunDayOfWeek": None,
        "RunStartInterval": None,
        "LocalOrUtcTime": 2,
        "UntilTime": None,
        "Notify": None,
        "Owner": spec.owner,
        "Priority": 0,
        "PercentComplete": job.percent(now),
        "DeleteOnCompletion": job.delete_on_completion,
        "ErrorCode": job.error_code if failed else 0,
        "ErrorDescription": job.error_description if failed else None,
        "RecoveryAction": 2,  # Do Not Continue
        "OtherRecoveryAction": None,
        "InstanceID": job.id,
        "Name": name,
        "JobState": int(job.state),
        "TimeOfLastStateChange": clock.datetime_at(job.state_changed_at),
        "TimeBeforeRemoval": dt.timedelta(seconds=job.time_before_removal),
        "Cancellable": job.cancellable,
        "ErrorSummaryDescription": job.error_description if failed else None,
    }
    if job.class_name == EXPORT_JOB:
        directory = spec.export_directory
        done = job.state in _SUCCESS
        vms = list(spec.virtual_machine_ids)
        props.update(
            CollectionId=spec.collection_id,
            ReferencePointGroupId=spec.reference_point_group_id,
            BaseReferencePointGroupId=None,
            VirtualMachineId=vms,
            ExportDirectory=directory,
            ExportedDisks=[f"{directory}\\{vm}\\Virtual Hard Disks\\{vm}.vhdx" for vm in vms] if done else [],
            ExportedLogFilePaths=[],
            ExportedConfigFilePaths=[f"{directory}\\{vm}\\Virtual Machines\\{vm}.vmcx" for vm in vms] if done else [],
            ExportedRuntimeFilePaths=[],
        )
    elif job.class_name == CONCRETE_JOB:
        props["JobType"] = spec.job_type if spec.job_type is not None else 0
    elif job.class_name == MIGRATION_JOB:
        props.update(
            MigrationType=spec.migration_type if spec.migration_type is not None else 32768,
            VirtualSystemName=spec.virtual_system_name,
            DestinationHost=spec.destination_host,
            NewSystemSettingData=None,
            NewResourceSettingData=[],
            JobType=spec.job_type if spec.job_type is not None else 305,  # Moving Virtual Machine
        )
    return props


def error_properties(job: SimJob) -> dict[str, Any]:
    """The Msvm_Error a failed job's GetError(Ex) returns: its ErrorCode and ErrorDescription."""
    return {
        "ErrorType": 4,  # Software Error
        "OtherErrorType": None,
        "OwningEntity": "Microsoft-Windows-Hyper-V-VMMS",
        "MessageID": str(job.error_code),
        "Message": job.error_description,
        "MessageArguments": [],
        "PerceivedSeverity": 5,  # Major
        "ProbableCause": 0,
        "ProbableCauseDescription": None,
        "RecommendedActions": [],
        "ErrorSource": job.id,
        "ErrorSourceFormat": 0,
        "OtherErrorSourceFormat": None,
        "CIMStatusCode": 1,  # CIM_ERR_FAILED
        "CIMStatusCodeDescription": None,
    }


def service_properties(model: ClusterModel, node: str) -> dict[str, Any]:
    """The node's Msvm_CollectionReferencePointService (the creator of export jobs)."""
    return {
        "InstanceID": None,
        "Caption": "Collection Reference Point Service",
        "Description": "Hyper-V Collection Reference Point Service",
        "ElementName": "Collection Reference Point Service",
        "InstallDate": None,
        "OperationalStatus": [2],
        "StatusDescriptions": ["OK"],
        "Status": "OK",
        "HealthState": 5,
        "CommunicationStatus": None,
        "DetailedStatus": None,
        "OperatingStatus": None,
        "PrimaryStatus": None,
        "EnabledState": 2,
        "OtherEnabledState": None,
        "RequestedState": 12,
        "EnabledDefault": 2,
        "TimeOfLastStateChange": None,
        "AvailableRequestedStates": [],
        "TransitioningToState": 12,
        "SystemCreationClassName": "Msvm_ComputerSystem",
        "SystemName": node,
        "CreationClassName": SERVICE_CLASS,
        "Name": "CollectionReferencePointService",
        "PrimaryOwnerName": None,
        "PrimaryOwnerContact": None,
        "StartMode": None,
        "Started": True,
    }


#: The key properties of the service; a method call names the instance by these selectors.
SERVICE_KEYS = ("CreationClassName", "Name", "SystemCreationClassName", "SystemName")


def cluster_properties(model: ClusterModel) -> dict[str, Any]:
    return {"Name": model.name, "Fqdn": f"{model.name}.hvjob.test"}


def node_properties(model: ClusterModel, node: str) -> dict[str, Any]:
    number = model.nodes.index(node) + 1
    return {"Name": node, "State": 0, "NodeInstanceID": f"00000000-0000-0000-0000-{number:012d}"}  # State 0: Up
