"""Hyper-V job operations: list, show, kill, request_state_change, stop, wait, errors.

Semantics follow Microsoft's pages for the job classes (NOTES section 3): KillJob return values
exactly as Microsoft's table for ``Msvm_CollectionReferencePointExportJob.KillJob``;
RequestStateChange decoded per class family; ``stop`` is idempotent (terminal or gone jobs are left
alone) and honest (an Invoke whose outcome cannot be known is never reported as success or as a
method failure). Every operation returns an :class:`OperationResult` instead of raising, so a
fan-out can report every host, and each result lists the requests it sent and what became of them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import fnmatch
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Concatenate, Literal, ParamSpec

from hvjob.errors import (
    HvjobError,
    Interrupted,
    JobFailed,
    JobNotCancellable,
    MethodFailed,
    NotSupported,
    ProtocolError,
    ResourceNotFound,
    UsageError,
    WaitTimedOut,
)
from hvjob.transport import WsmanSession
from hvjob.transport.session import CancelFlag
from hvjob.wire import build, ns, schema
from hvjob.wire.cim import CimDatetime, CimInterval, EndpointReference
from hvjob.wire.parse import (
    CimInstance,
    EnumerationPage,
    MethodOutput,
    PropertyValue,
    Result,
    identify_dict,
    jsonable,
)
from hvjob.wire.xmlsafe import local, parse_xml

DEFAULT_NAMESPACE = "root/HyperVCluster/v2"
DEFAULT_CLASS = "Msvm_CollectionReferencePointExportJob"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")
_NAMESPACE = re.compile(r"[A-Za-z0-9_]+(?:/[A-Za-z0-9_]+)*")


def check_class(namespace: str, class_name: str) -> None:
    """A WMI namespace (``root/HyperVCluster/v2``) and class name that can go into a resource URI;
    UsageError otherwise (front ends check once, before any host)."""
    if not _IDENTIFIER.fullmatch(class_name):
        raise UsageError(f"invalid WMI class name {class_name!r}")
    if not _NAMESPACE.fullmatch(ns.normalize_namespace(namespace)):
        raise UsageError(f"invalid WMI namespace {namespace!r}")


Mode = Literal["kill", "terminate"]
Method = Literal["auto", "request-state-change", "kill-job", "kill-job-first"]
METHODS: tuple[str, ...] = ("auto", "request-state-change", "kill-job", "kill-job-first")


class JobState(enum.IntEnum):
    """CIM_ConcreteJob.JobState, plus Hyper-V's 32768 Completed with Warnings.

    A number wherever numbers go (comparisons, JSON, WQL), its label where text goes: ``print``
    and ``f"{state}"`` show ``Killed``, ``f"{state:d}"`` shows ``9``.
    """

    NEW = 2
    STARTING = 3
    RUNNING = 4
    SUSPENDED = 5
    SHUTTING_DOWN = 6
    COMPLETED = 7
    TERMINATED = 8
    KILLED = 9
    EXCEPTION = 10
    SERVICE = 11
    QUERY_PENDING = 12
    COMPLETED_WITH_WARNINGS = 32768

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").title().replace("With", "with")

    def __str__(self) -> str:
        return self.label

    def __format__(self, format_spec: str) -> str:
        return self.label if not format_spec else int.__format__(self, format_spec)

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @classmethod
    def parse(cls, text: str) -> JobState:
        """``Running``, ``running``, ``4`` or ``shutting-down`` to a state; UsageError otherwise."""
        key = text.strip().upper().replace(" ", "_").replace("-", "_")
        if key.isdigit() and int(key) in cls._value2member_map_:
            return cls(int(key))
        if key in cls.__members__:
            return cls[key]
        raise UsageError(f"unknown job state {text!r}; one of {', '.join(s.label for s in cls)}")


def state_label(value: object) -> str | None:
    """``Running`` for 4, ``Completed with Warnings`` for 32768; the number itself for a vendor state."""
    if value is None:
        return None
    try:
        number = int(str(value))
    except ValueError:
        return str(value)
    return JobState(number).label if number in JobState._value2member_map_ else str(number)


TERMINAL_STATES = frozenset(
    {JobState.COMPLETED, JobState.TERMINATED, JobState.KILLED, JobState.EXCEPTION, JobState.COMPLETED_WITH_WARNINGS}
)

# --- return values -------------------------------------------------------------------------------

# Microsoft's table for KillJob of Msvm_CollectionReferencePointExportJob, word for word.
KILLJOB_RETURN = {
    0: "Success",
    1: "Not Supported",
    2: "Unknown",
    3: "Timeout",
    4: "Failed",
    6: "Access Denied",
    7: "Not Found",
}

# DSP1004 / CIM_ConcreteJob.RequestStateChange ValueMap.
RSC_DMTF = {
    0: "Completed",
    1: "Not Supported",
    2: "Unknown",
    3: "Timeout",
    4: "Failed",
    5: "Invalid Parameter",
    6: "In Use",
    4096: "Transition Started",
    4097: "Invalid State Transition",
    4098: "Timeout Parameter Not Supported",
    4099: "Busy",
}
# Msvm_*Job.RequestStateChange (Hyper-V pages in ../shared/reference/ms-docs).
RSC_HYPERV = {
    0: "Completed",
    4096: "Transition Started",
    32768: "Failed",
    32769: "Access Denied",
    32770: "Not Supported",
    32771: "Status Unknown",
    32772: "Timeout",
    32773: "Invalid Parameter",
    32774: "System In Use",
    32775: "Invalid State",
    32776: "Incorrect Data Type",
    32777: "System Not Available",
    32778: "Out Of Memory",
}


def killjob_return_name(value: int) -> str:
    """Microsoft's meaning of a KillJob ReturnValue (unlisted values up to 32767 are DMTF Reserved)."""
    if value in KILLJOB_RETURN:
        return KILLJOB_RETURN[value]
    if 0 <= value <= 32767:
        return "DMTF Reserved"
    if 32768 <= value <= 65535:
        return "Vendor Specific"
    return "Undefined"  # beyond the documented uint16 range of the table


def rsc_return_name(value: int, class_name: str) -> str:
    """RequestStateChange ReturnValue by class family: Msvm_ classes use Hyper-V's vendor codes."""
    if class_name.startswith("Msvm_") and value in RSC_HYPERV:
        return RSC_HYPERV[value]
    if value in RSC_DMTF:
        return RSC_DMTF[value]
    if 7 <= value <= 4095:
        return "DMTF Reserved"
    if 4100 <= value <= 32767:
        return "Method Reserved"
    if 32768 <= value <= 65535:
        return "Vendor Specific"
    return "Undefined"


def return_name(method: str, value: int, class_name: str) -> str:
    if method == "KillJob":
        return killjob_return_name(value)
    if method == "RequestStateChange":
        return rsc_return_name(value, class_name)
    return "Success" if value == 0 else "Failed"


def accepted(method: str, value: int) -> bool:
    """Whether a stop method's ReturnValue means the node took the request: 0, or for
    RequestStateChange 4096 (Transition Started: the change runs on). KillJob's table has no 4096."""
    return value == 0 or (method == "RequestStateChange" and value == 4096)


def _not_supported(method: str, value: int, class_name: str) -> bool:
    """Every way a method's ReturnValue says "not supported": 1 (DMTF), or Hyper-V's vendor code 32770
    from RequestStateChange, or from any method of an ``Msvm_`` class (a fault is :class:`NotSupported`)."""
    return value == 1 or (value == 32770 and (method == "RequestStateChange" or class_name.startswith("Msvm_")))


# --- the job model -------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    """The schema has typed what it knows; a class that omits a property from its documented
    schema (JobType on the export job) may still send it as decimal text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _bool(value: Any) -> bool | None:
    """As ``_int``: a class whose schema hvjob does not know still sends ``true``/``false`` text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _time(value: Any) -> dt.datetime | None:
    return value.value if isinstance(value, CimDatetime) else None


def _interval(value: Any) -> dt.timedelta | None:
    return value.value if isinstance(value, CimInterval) else None


@dataclass(frozen=True)
class Job:
    """A CIM_ConcreteJob instance, typed. ``properties`` keeps every property, typed by the class's
    schema (:mod:`hvjob.wire.schema`); what the schema does not know stays as received."""

    instance_id: str
    class_name: str | None
    name: str | None
    job_state: JobState | None
    job_state_value: int | None
    percent_complete: int | None
    error_code: int | None
    error_description: str | None
    error_summary_description: str | None
    cancellable: bool | None
    delete_on_completion: bool | None
    start_time: dt.datetime | None
    elapsed_time: dt.timedelta | None
    time_of_last_state_change: dt.datetime | None
    time_before_removal: dt.timedelta | None
    job_type: int | None
    owner: str | None
    properties: Mapping[str, PropertyValue] = field(repr=False)

    @classmethod
    def from_instance(cls, instance: CimInstance, class_name: str | None = None) -> Job:
        """``class_name``: the class asked for, when the reply does not name one (an XmlFragment)."""
        name_of_class = instance.class_name or class_name
        p = schema.typed_properties(name_of_class, instance.properties)
        instance_id = _str(p.get("InstanceID"))
        if not instance_id:
            raise ProtocolError("job instance has no InstanceID")
        state_value = _int(p.get("JobState"))
        try:
            state = JobState(state_value) if state_value is not None else None
        except ValueError:
            state = None  # a vendor state we do not know: keep the number
        return cls(
            instance_id=instance_id,
            class_name=name_of_class,
            name=_str(p.get("Name")),
            job_state=state,
            job_state_value=state_value,
            percent_complete=_int(p.get("PercentComplete")),
            error_code=_int(p.get("ErrorCode")),
            error_description=_str(p.get("ErrorDescription")),
            error_summary_description=_str(p.get("ErrorSummaryDescription")),
            cancellable=_bool(p.get("Cancellable")),
            delete_on_completion=_bool(p.get("DeleteOnCompletion")),
            start_time=_time(p.get("StartTime")),
            elapsed_time=_interval(p.get("ElapsedTime")),
            time_of_last_state_change=_time(p.get("TimeOfLastStateChange")),
            time_before_removal=_interval(p.get("TimeBeforeRemoval")),
            job_type=_int(p.get("JobType")),
            owner=_str(p.get("Owner")),
            properties=p,
        )

    @property
    def is_terminal(self) -> bool:
        return self.job_state is not None and self.job_state.is_terminal

    @property
    def succeeded(self) -> bool:
        """Completed (or Completed with Warnings) with ErrorCode 0."""
        return self.job_state in (JobState.COMPLETED, JobState.COMPLETED_WITH_WARNINGS) and (self.error_code or 0) == 0

    @property
    def state_label(self) -> str | None:
        return state_label(self.job_state_value)

    def age(self, now: dt.datetime | None = None) -> dt.timedelta | None:
        """How long the job has run: its ElapsedTime when it has one (the node's own count, immune
        to clock skew between this host and the node; for a finished job, how long it ran), else
        now minus StartTime."""
        if self.elapsed_time is not None and self.elapsed_time > dt.timedelta(0):
            return self.elapsed_time
        if self.start_time is None:
            return None
        start = self.start_time if self.start_time.tzinfo else self.start_time.replace(tzinfo=dt.timezone.utc)
        return (now or dt.datetime.now(dt.timezone.utc)) - start

    def to_properties(self) -> dict[str, Any]:
        """JSON-ready properties keyed by WMI property name: integers, booleans, datetimes as
        ISO 8601 text, intervals as seconds (docs/cli.md)."""
        data: dict[str, Any] = jsonable(dict(self.properties))
        return data


#: Properties that ``JobFilter.name`` matches against: the job's name, its VM group, its export directory.
NAME_PROPERTIES = ("Name", "ElementName", "CollectionId", "ReferencePointGroupId", "ExportDirectory")


@dataclass(frozen=True)
class JobFilter:
    """Which jobs an operation selects: every condition given must hold.

    ``states``: JobState values (sent to the node in the WQL query). ``older_than``: started at
    least that long ago (see :meth:`Job.age`). ``owner``: the Owner property, case-insensitively.
    ``name``: a shell glob (``*VMGroup1*``), case-insensitive, over :data:`NAME_PROPERTIES`.
    """

    states: tuple[JobState, ...] = ()
    older_than: dt.timedelta | None = None
    owner: str | None = None
    name: str | None = None

    @classmethod
    def of(
        cls,
        states: Iterable[JobState | int | str] | None = None,
        *,
        older_than: float | dt.timedelta | None = None,
        owner: str | None = None,
        name: str | None = None,
    ) -> JobFilter:
        """A filter from friendly values: states by member, number or name; ages in seconds."""
        parsed = tuple(s if isinstance(s, JobState) else JobState.parse(str(s)) for s in states or ())
        if isinstance(older_than, (int, float)):
            if older_than < 0:
                raise UsageError("older_than cannot be negative")
            older_than = dt.timedelta(seconds=older_than)
        return cls(parsed, older_than, owner, name)

    def matches(self, job: Job, now: dt.datetime | None = None) -> bool:
        if self.states and job.job_state not in self.states:
            return False
        if self.older_than is not None:
            age = job.age(now)
            if age is None or age < self.older_than:
                return False
        if self.owner is not None and (job.owner or "").casefold() != self.owner.casefold():
            return False
        if self.name is not None:
            pattern = self.name.casefold()
            values = [job.properties.get(p) for p in NAME_PROPERTIES]
            if not any(isinstance(v, str) and fnmatch.fnmatchcase(v.casefold(), pattern) for v in values):
                return False
        return True


def selection_of(
    states: Iterable[JobState | int | str] | None,
    older_than: float | dt.timedelta | None,
    owner: str | None,
    name: str | None,
    where: JobFilter | None,
    default_states: tuple[JobState, ...] = (),
) -> JobFilter:
    """One filter from either ``where`` or the separate conditions (not both); no state at all
    selects ``default_states`` (``stop_all``: Running, so that a filter on the owner alone never
    reaches a finished or suspended job)."""
    if where is not None:
        if states or older_than is not None or owner is not None or name is not None:
            raise UsageError("give where= or the separate conditions (states, older_than, owner, name), not both")
        return where if where.states or not default_states else replace(where, states=default_states)
    chosen = JobFilter.of(states, older_than=older_than, owner=owner, name=name)
    return chosen if chosen.states or not default_states else replace(chosen, states=default_states)


# --- results -------------------------------------------------------------------------------------

RequestOutcome = Literal["answered", "failed", "unknown", "in flight"]
_MUTATING = frozenset({"KillJob", "RequestStateChange"})


@dataclass
class SentRequest:
    """One request an operation sent, and what became of it.

    ``outcome``: ``answered`` (a reply or a fault came back), ``failed`` (no usable reply, and the
    request was safe or provably not acted on), ``unknown`` (a method was sent and no usable answer
    came: it may have run), ``in flight`` (no answer yet: an interrupted fan-out reports these).
    """

    request: str  # Get, Enumerate, Pull, Release, or the method name of an Invoke
    job: str | None
    outcome: RequestOutcome = "in flight"
    message_id: str | None = None  # the envelope's MessageID: what the server's own logs can be matched on
    return_value: int | None = None
    found: bool | None = None  # for a request about a job: whether the node had it

    @property
    def mutating(self) -> bool:
        return self.request in _MUTATING

    @property
    def accepted(self) -> bool:
        """A mutating method that the node accepted (see :func:`accepted`)."""
        return (
            self.mutating
            and self.outcome == "answered"
            and self.return_value is not None
            and accepted(self.request, self.return_value)
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"request": self.request, "outcome": self.outcome}
        if self.return_value is not None:
            data["return_value"] = self.return_value
        if self.message_id is not None:
            data["message_id"] = self.message_id
        return data


@dataclass
class OperationResult:
    """What one operation did on one host. ``error`` is None when it succeeded.

    ``changed``: True only if a mutating method was accepted, False only if none was sent (or one
    was refused), None when it cannot be known; in check mode nothing is sent, so it is False and
    ``would_change`` says whether a real run would send a mutating method. ``found``: whether the
    host had the job (None when nothing was learnt). ``requests``: every request sent, in order,
    with its outcome.
    """

    host: str
    command: str
    job: str | None = None
    method: str | None = None
    return_value: int | None = None
    return_name: str | None = None
    changed: bool | None = False
    would_change: bool | None = None  # check mode: whether a real run would send a mutating method
    job_state_value: int | None = None
    error: HvjobError | None = None
    gone: bool = False
    found: bool | None = None
    succeeded: bool | None = None
    properties: dict[str, Any] | None = None
    jobs: list[dict[str, Any]] | None = None
    errors: list[dict[str, Any]] | None = None
    identity: dict[str, Any] | None = None
    elapsed_ms: float = 0.0
    notes: list[str] = field(default_factory=list)
    requests: list[SentRequest] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        """ok; unreachable (the host never answered anything); failed."""
        if self.error is None:
            return "ok"
        answered = any(r.outcome == "answered" for r in self.requests)
        return "unreachable" if self.error.unreachable and not answered else "failed"

    def raise_for_error(self) -> OperationResult:
        if self.error is not None:
            raise self.error
        return self

    @property
    def job_state(self) -> JobState | None:
        value = self.job_state_value
        return JobState(value) if value is not None and value in JobState._value2member_map_ else None

    def set_job(self, job: Job) -> None:
        """Remember what was read of the job: its state, and its properties for front ends to show."""
        self.job_state_value = job.job_state_value
        self.properties = job.to_properties()

    def to_dict(self) -> dict[str, Any]:
        """The result object of docs/cli.md."""
        data: dict[str, Any] = {
            "host": self.host,
            "status": self.status,
            "changed": self.changed,
            "job": self.job,
            "method": self.method,
            "return_value": self.return_value,
            "return_name": self.return_name,
            "job_state": state_label(self.job_state_value),
            "error": self.error.to_dict() if self.error is not None else None,
            "elapsed_ms": round(self.elapsed_ms, 1),
        }
        if self.job is not None:
            data["found"] = self.found
        if self.would_change is not None:
            data["would_change"] = self.would_change
        if self.command == "list" or self.jobs is not None:  # stop --all reports each job it touched
            data["jobs"] = self.jobs or []
        if self.command in ("show", "wait") or (self.properties and self.command == "stop"):
            data["properties"] = self.properties
        if self.command == "wait":
            data["succeeded"] = self.succeeded
        if self.command == "errors":
            data["errors"] = self.errors or []
        if self.command == "identify":
            data["identity"] = self.identity
        if self.gone:
            data["gone"] = True
        if self.notes:
            data["notes"] = list(self.notes)
        data["requests"] = [r.to_dict() for r in self.requests]
        return data


@dataclass(frozen=True)
class PlannedRequest:
    """A request an operation may send (``JobClient.plan``), and the condition it is sent under."""

    when: str  # empty for a request that is always sent
    request: build.WsmanRequest


P = ParamSpec("P")
_Operation = Callable[Concatenate["JobClient", P], OperationResult]


def _timed(command: str) -> Callable[[_Operation[P]], _Operation[P]]:
    """Time an operation, record the requests it sends, and turn an escaped hvjob error into the
    result's error. ``functools.wraps`` keeps the signature for help(), IDEs and mypy."""

    def wrap(fn: _Operation[P]) -> _Operation[P]:
        @functools.wraps(fn)
        def inner(self: JobClient, /, *args: P.args, **kwargs: P.kwargs) -> OperationResult:
            start = time.monotonic()
            first = args[0] if args and isinstance(args[0], str) else None
            job = kwargs.get("job_id", first)
            log: list[SentRequest] = []
            self._logs.append(log)
            try:
                result = fn(self, *args, **kwargs)
            except Exception as exc:  # what was sent still counts: changed comes from the requests
                error = (
                    exc
                    if isinstance(exc, HvjobError)
                    else ProtocolError(f"unexpected {type(exc).__name__}: {exc}", host=self.host)
                )
                if not isinstance(exc, HvjobError):
                    logging.getLogger("hvjob.jobs").debug("unexpected failure in %s", command, exc_info=True)
                result = OperationResult(self.host, command, job=job if isinstance(job, str) else None, error=error)
                result.changed = changed_by(log)
            finally:
                self._logs[:] = [other for other in self._logs if other is not log]  # by identity, not ==
                self._last_log = log  # until the fan-out has read it (an interrupted host's report)
            result.requests = log
            if result.job is not None and result.found is None:
                result.found = found_by(result.job, log)
            result.elapsed_ms = (time.monotonic() - start) * 1000
            return result

        return inner

    return wrap


def changed_by(sent: Iterable[SentRequest]) -> bool | None:
    """What a list of requests proves about ``changed``: True if a mutating method was accepted,
    None if one was sent and its answer is unknown, False if none was sent or all were refused."""
    mutating = [r for r in sent if r.mutating]
    if any(r.accepted for r in mutating):
        return True
    if any(r.outcome in ("in flight", "unknown") for r in mutating):
        return None
    return False


def found_by(job_id: str, log: list[SentRequest]) -> bool | None:
    """True if any answer showed the job; False if the answers only said it is not there."""
    about = [r.found for r in log if r.job == job_id and r.found is not None]
    if any(about):
        return True
    return False if about else None


# --- the client ----------------------------------------------------------------------------------


class JobClient:
    """Job operations on one host, over one :class:`WsmanSession`; a context manager that closes it.

    ``cancel``: once set, no further request is sent (the operation ends with :class:`Interrupted`)
    and a wait between polls ends at once. ``on_poll(host, job)`` is called with each state a wait
    reads (the CLI's progress bars).
    """

    def __init__(
        self,
        session: WsmanSession,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        class_name: str = DEFAULT_CLASS,
        poll_initial: float = 0.5,
        poll_max: float = 5.0,
        sleep: Callable[[float], None] | None = None,
        check: bool = False,
        cancel: CancelFlag | None = None,
        on_poll: Callable[[str, Job], None] | None = None,
    ) -> None:
        check_class(namespace, class_name)
        self.session = session
        self.namespace = ns.normalize_namespace(namespace)
        self.class_name = class_name
        self.resource_uri = ns.wmi_resource_uri(self.namespace, class_name)
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.sleep = sleep
        self.check = check
        self.cancel = cancel
        session.cancel = cancel  # the session resends a lost request only while this is not set
        self.on_poll = on_poll  # (host, job) after each read of a wait: a progress display's feed
        self._logs: list[list[SentRequest]] = []  # one per operation in progress (stop_all nests stop)
        self._last_log: list[SentRequest] = []

    @property
    def host(self) -> str:
        return self.session.host

    def __repr__(self) -> str:
        return f"JobClient(session={self.session!r}, namespace={self.namespace!r}, class_name={self.class_name!r})"

    def __enter__(self) -> JobClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()

    def close(self) -> None:
        self.session.close()

    # --- requests --------------------------------------------------------------------------

    def get_request(self, job_id: str, resource_uri: str | None = None) -> build.WsmanRequest:
        _check_id(job_id)
        return build.build_get(self.session.header_options, resource_uri or self.resource_uri, {"InstanceID": job_id})

    def enumerate_request(
        self, states: Iterable[JobState] | None = None, *, max_elements: int = 32
    ) -> build.WsmanRequest:
        """A WQL Enumerate of the class against ``.../wmi/<namespace>/*`` (NOTES 1)."""
        wql = f"SELECT * FROM {self.class_name}"  # noqa: S608 (class name validated as an identifier)
        wanted = list(states or ())
        if wanted:
            wql += " WHERE " + " OR ".join(f"JobState = {int(s)}" for s in wanted)
        uri = ns.wmi_namespace_uri(self.namespace)
        return build.build_enumerate(self.session.header_options, uri, wql=wql, max_elements=max_elements)

    def invoke_request(
        self, job_id: str, method: str, parameters: list[tuple[str, Any]], resource_uri: str | None = None
    ) -> build.WsmanRequest:
        _check_id(job_id)
        return build.build_invoke(
            self.session.header_options, resource_uri or self.resource_uri, method, parameters, {"InstanceID": job_id}
        )

    @staticmethod
    def identify_request() -> build.WsmanRequest:
        return build.build_identify()

    def _send(self, request: build.WsmanRequest, job: str | None = None) -> Result:
        """Every request goes through here: checked against ``cancel``, and recorded."""
        name = request.method if request.operation == "Invoke" and request.method else request.operation
        if self.cancel is not None and self.cancel.is_set():
            raise Interrupted(f"interrupted before {name} was sent", host=self.host)
        entry = SentRequest(name, job, message_id=request.message_id)
        for log in self._logs:
            log.append(entry)
        try:
            reply = self.session.send(request)
        except ResourceNotFound:
            entry.outcome, entry.found = "answered", False
            raise
        except HvjobError as exc:
            if exc.type == "wsman_fault":  # a fault is an answer (one that proves nothing of the job)
                entry.outcome = "answered"
            elif exc.type == "outcome_unknown" or (request.operation == "Invoke" and isinstance(exc, ProtocolError)):
                entry.outcome = "unknown"
            else:
                entry.outcome = "failed"
            raise
        if isinstance(reply, MethodOutput):  # everything before the outcome: a report may read it any time
            entry.return_value = reply.return_value
            if job is not None:
                entry.found = not (reply.method == "KillJob" and reply.return_value == 7)
        elif isinstance(reply, CimInstance) and job is not None:
            entry.found = True
        entry.outcome = "answered"
        return reply

    def requests_in_progress(self) -> list[SentRequest]:
        """The requests of the operation running now, or of the one that just ended (for an
        interrupted fan-out's report)."""
        if self._logs:
            return list(self._logs[0])
        return list(self._last_log)

    def _pause(self, seconds: float) -> None:
        """Sleep between polls; a set ``cancel`` ends the sleep at once and the operation with it."""
        if self.sleep is not None:
            self.sleep(seconds)
        elif self.cancel is None:
            time.sleep(seconds)
        elif isinstance(self.cancel, threading.Event):
            self.cancel.wait(seconds)
        else:
            deadline = time.monotonic() + seconds
            while not self.cancel.is_set() and (left := deadline - time.monotonic()) > 0:
                time.sleep(min(0.1, left))
        if self.cancel is not None and self.cancel.is_set():
            raise Interrupted("interrupted while waiting between polls", host=self.host)

    # --- primitives ------------------------------------------------------------------------

    def get_job(self, job_id: str, resource_uri: str | None = None) -> Job:
        """Get one job; raises ResourceNotFound when it is gone."""
        reply = self._send(self.get_request(job_id, resource_uri), job_id)
        if not isinstance(reply, CimInstance):
            raise ProtocolError("Get reply is not an instance", host=self.host)
        return Job.from_instance(reply, self.class_name if resource_uri is None else None)

    def iter_jobs(
        self, states: Iterable[JobState] | None = None, *, max_elements: int = 32, where: JobFilter | None = None
    ) -> Iterator[Job]:
        """Enumerate jobs of the class with WQL (states filtered by the node, ``where``'s other
        conditions here); releases the enumeration if abandoned or failed."""
        wanted = tuple(states or ()) + (where.states if where else ())
        request = self.enumerate_request(wanted, max_elements=max_elements)
        uri = request.resource_uri or ""
        options = self.session.header_options
        now = dt.datetime.now(dt.timezone.utc)
        page = self._send(request)
        context: str | None = None
        try:
            while True:
                if not isinstance(page, EnumerationPage):
                    raise ProtocolError("enumeration reply is not a page", host=self.host)
                context = page.context
                for item in page.items:
                    job = Job.from_instance(item, self.class_name)
                    if where is None or where.matches(job, now):
                        yield job
                if page.end_of_sequence or not page.context:
                    context = None
                    return
                page = self._send(build.build_pull(options, uri, page.context, max_elements=max_elements))
        finally:
            if context:
                self._release(uri, context)

    def _release(self, uri: str, context: str) -> None:
        # Best effort: the server drops it after its EnumerationTimeout anyway.
        with contextlib.suppress(HvjobError):
            self._send(build.build_release(self.session.header_options, uri, context))

    def invoke(
        self, job_id: str, method: str, parameters: list[tuple[str, Any]], resource_uri: str | None = None
    ) -> MethodOutput:
        reply = self._send(self.invoke_request(job_id, method, parameters, resource_uri), job_id)
        if not isinstance(reply, MethodOutput):
            raise ProtocolError("Invoke reply is not a method output", host=self.host)
        return reply

    def request_state_change(
        self, job_id: str, requested_state: int, timeout_period: dt.timedelta | None = None
    ) -> MethodOutput:
        """RequestStateChange (2 Start, 3 Suspend, 4 Terminate, 5 Kill, 6 Service)."""
        params: list[tuple[str, Any]] = [("RequestedState", int(requested_state))]
        if timeout_period is not None:
            params.append(("TimeoutPeriod", CimInterval(timeout_period)))
        return self.invoke(job_id, "RequestStateChange", params)

    # --- what an operation may send (``--dry-run``) ------------------------------------------

    def plan(
        self,
        command: str,
        job_id: str | None = None,
        *,
        mode: Mode = "kill",
        method: Method = "auto",
        wait: bool = False,
        delete_on_kill: bool = False,
        skip_terminal: bool = False,
        where: JobFilter | None = None,
    ) -> list[PlannedRequest]:
        """Every request ``command`` could send, in order, each with the condition it is sent under.

        Nothing is sent. Kept beside the operations so that the two cannot drift: tests compare a
        plan with what the operation sends against a server.
        """
        if command == "identify":
            return [PlannedRequest("", self.identify_request())]
        if command in ("list", "stop-all"):
            first = self.enumerate_request(where.states if where else ())
            uri = first.resource_uri or ""
            context = "<EnumerationContext from the reply>"
            steps = [
                PlannedRequest("", first),
                PlannedRequest(
                    "while the node has more jobs to send (its EnumerationContext)",
                    build.build_pull(self.session.header_options, uri, context),
                ),
                PlannedRequest(
                    "if the enumeration is abandoned (an error, Ctrl-C)",
                    build.build_release(self.session.header_options, uri, context),
                ),
            ]
            if command == "stop-all":
                example = "<InstanceID of each job selected>"
                for step in self.plan("stop", example, mode=mode, method=method, wait=wait):
                    steps.append(PlannedRequest("for each job selected: " + (step.when or "read it"), step.request))
            return steps
        if job_id is None:
            raise UsageError(f"{command} needs a job id")
        get = PlannedRequest("", self.get_request(job_id))
        if command in ("show", "wait"):
            polls = [PlannedRequest("until the job is terminal or the timeout passes", self.get_request(job_id))]
            return [get, *polls] if command == "wait" else [get]
        if command == "errors":
            return [
                PlannedRequest("", self.invoke_request(job_id, "GetErrorEx", [])),
                PlannedRequest("if GetErrorEx is not supported", self.invoke_request(job_id, "GetError", [])),
            ]
        killjob = self.invoke_request(job_id, "KillJob", [("DeleteOnKill", bool(delete_on_kill and command == "kill"))])
        if command == "kill":
            if self.check:
                return [get]
            first_kill = PlannedRequest("if the job is still running" if skip_terminal else "", killjob)
            return [get, first_kill] if skip_terminal else [first_kill]
        if command != "stop":
            raise UsageError(f"no plan for {command!r}")
        steps = [get]
        if self.check:
            return steps
        requested = 5 if mode == "kill" else 4
        order = _method_order(mode, method)
        for position, name in enumerate(order):
            request = (
                killjob
                if name == "KillJob"
                else self.invoke_request(job_id, "RequestStateChange", [("RequestedState", requested)])
            )
            when = (
                "if the job is running (and cancellable, or with --force)"
                if position == 0
                else f"if {order[position - 1]} is not supported"
            )
            steps.append(PlannedRequest(when, request))
        steps.append(PlannedRequest("if a method's answer is lost: read the job once", self.get_request(job_id)))
        if wait:
            tracker_uri = ns.wmi_resource_uri(self.namespace, "Msvm_ConcreteJob")
            steps.append(
                PlannedRequest(
                    "with --wait, if RequestStateChange returns 4096 and a Job reference: until that job is terminal",
                    self.get_request("<InstanceID of the Job reference>", tracker_uri),
                )
            )
            steps.append(
                PlannedRequest("with --wait, once accepted: until the job is terminal", self.get_request(job_id))
            )
        return steps

    # --- operations ------------------------------------------------------------------------

    @_timed("identify")
    def identify(self, *, anonymous: bool = False) -> OperationResult:
        """WS-Man Identify; authenticated unless ``anonymous`` (proves the credentials when it is)."""
        if self.cancel is not None and self.cancel.is_set():
            raise Interrupted("interrupted before Identify was sent", host=self.host)
        reply = self.session.identify(anonymous=anonymous)
        return OperationResult(self.host, "identify", method="Identify", identity=identify_dict(reply))

    @_timed("show")
    def show(self, job_id: str) -> OperationResult:
        """Get one job: its state and every property."""
        result = OperationResult(self.host, "show", job=job_id, method="Get")
        try:
            job = self.get_job(job_id)
        except ResourceNotFound as exc:
            result.gone, result.error = True, exc
            return result
        result.set_job(job)
        return result

    @_timed("list")
    def list(
        self,
        states: Iterable[JobState | int | str] | None = None,
        *,
        older_than: float | dt.timedelta | None = None,
        owner: str | None = None,
        name: str | None = None,
        where: JobFilter | None = None,
    ) -> OperationResult:
        """The jobs of the class that match (see :class:`JobFilter`), as typed property dicts."""
        selection = selection_of(states, older_than, owner, name, where)
        jobs = [j.to_properties() for j in self.iter_jobs(where=selection)]
        return OperationResult(self.host, "list", method="Enumerate", jobs=jobs)

    @_timed("kill")
    def kill(
        self, job_id: str, *, delete_on_kill: bool = False, missing_ok: bool = False, skip_terminal: bool = False
    ) -> OperationResult:
        """KillJob(DeleteOnKill), the deprecated method Microsoft documents. Succeeds only on 0.

        ``skip_terminal`` reads the job first and leaves a finished one alone (unchanged), which makes
        a declarative "killed" state idempotent; without it KillJob is sent as asked.
        """
        result = OperationResult(self.host, "kill", job=job_id, method="KillJob")
        if self.check:
            return self._kill_check(result, job_id, missing_ok, skip_terminal)
        if skip_terminal:
            result.method = "Get"
            if self._read_live(result, job_id, missing_ok) is None:
                return result
            result.method = "KillJob"
        try:
            out = self.invoke(job_id, "KillJob", [("DeleteOnKill", bool(delete_on_kill))])
        except ResourceNotFound as exc:
            return self._gone(result, exc, missing_ok)
        except HvjobError as exc:
            if isinstance(exc, ProtocolError) or exc.type == "outcome_unknown":
                result.changed = None  # the call was sent and may have run: `stop` re-reads, `kill` reports
            result.error = exc
            return result
        result.return_value, result.return_name = out.return_value, killjob_return_name(out.return_value)
        if out.return_value == 0:
            result.changed, result.job_state_value = True, None  # the state read before is stale now
        elif out.return_value == 7 and missing_ok:
            result.gone, result.changed = True, False
            result.notes.append("KillJob returned 7 (Not Found): the job is gone")
        else:
            result.changed = False
            result.error = _method_failed(self.host, "KillJob", out.return_value, result.return_name)
        return result

    @_timed("stop")
    def stop(
        self,
        job_id: str,
        *,
        mode: Mode = "kill",
        method: Method = "auto",
        wait: bool = False,
        timeout: float = 300.0,
        force: bool = False,
        missing_ok: bool = True,
        timeout_period: dt.timedelta | None = None,
    ) -> OperationResult:
        """The idempotent stop: read, leave terminal or gone jobs alone, request Kill or Terminate.

        With ``wait``, a stop that was accepted stays ``changed`` whatever the wait then meets
        (a time-out, a lost connection): the wait's error is the result's error.
        """
        if mode not in ("kill", "terminate"):
            raise UsageError(f"mode must be kill or terminate, not {mode!r}")
        if method not in METHODS:
            raise UsageError(f"method must be one of {', '.join(METHODS)}")
        result = OperationResult(self.host, "stop", job=job_id, method="Get")
        job = self._read_live(result, job_id, missing_ok)
        if job is None:
            return result
        if job.job_state is JobState.SHUTTING_DOWN:  # a stop is already under way: do not send another
            result.notes.append("already Shutting Down: a stop is in progress; nothing was sent")
            if wait:
                self._wait_guarded(result, job_id, None, timeout)
            return result
        if job.cancellable is False and not force:
            result.error = JobNotCancellable(
                f"job {job_id} is not cancellable (Cancellable = false); nothing was sent "
                "(the force option sends it anyway)",
                host=self.host,
            )
            return result
        order = _method_order(mode, method)
        if self.check:  # nothing is sent: changed stays false; would_change says what a real run would do
            result.would_change, result.method = True, order[0]
            result.notes.append(f"would call {order[0]}")
            return result
        requested = 5 if mode == "kill" else 4
        for position, name in enumerate(order):
            last = position == len(order) - 1
            result.method = name
            try:
                if name == "KillJob":
                    out = self.invoke(job_id, "KillJob", [("DeleteOnKill", False)])
                else:
                    out = self.request_state_change(job_id, requested, timeout_period)
            except NotSupported as exc:
                if last:
                    result.error = exc
                    return result
                result.notes.append(f"{name} not supported ({exc.message}); falling back")
                continue
            except ResourceNotFound as exc:
                return self._gone(result, exc, missing_ok)
            except HvjobError as exc:
                # No answer, an unusable one, or w:TimedOut (type outcome_unknown): read the job instead.
                if isinstance(exc, ProtocolError) or exc.type == "outcome_unknown":
                    return self._reread_after_unknown(result, job_id, exc, timeout if wait else None)
                result.error = exc
                return result
            result.return_value = out.return_value
            result.return_name = return_name(name, out.return_value, self.class_name)
            if _not_supported(name, out.return_value, self.class_name) and not last:
                meaning = result.return_name or ""
                if meaning != "Not Supported":  # KillJob's table calls Hyper-V's 32770 Vendor Specific
                    meaning += ": Hyper-V's Not Supported"
                result.notes.append(f"{name} returned {out.return_value} ({meaning}); falling back")
                continue
            if name == "KillJob" and out.return_value == 7:  # Not Found: gone, as kill reads it
                result.gone, result.changed = True, False
                if missing_ok:
                    result.notes.append("KillJob returned 7 (Not Found): the job is gone")
                else:
                    result.error = _method_failed(self.host, name, out.return_value, result.return_name)
                return result
            if not accepted(name, out.return_value):
                result.changed = False
                result.error = _method_failed(self.host, name, out.return_value, result.return_name)
                return result
            result.changed = True
            result.job_state_value, result.properties = None, None  # read before the stop: no longer true
            if wait and self._wait_guarded(result, job_id, out.job, timeout) is not None:
                result.notes.append(f"{name} was accepted; the wait then failed")
            return result
        return result

    @_timed("stop")
    def stop_all(
        self,
        /,
        states: Iterable[JobState | int | str] | None = None,
        *,
        older_than: float | dt.timedelta | None = None,
        owner: str | None = None,
        name: str | None = None,
        where: JobFilter | None = None,
        **stop_options: Any,
    ) -> OperationResult:
        """Stop every job that matches (no state given: Running) on this host, each with
        :meth:`stop` (``stop_options`` are its options). ``jobs`` lists each stop's result."""
        selection = selection_of(states, older_than, owner, name, where, default_states=(JobState.RUNNING,))
        result = OperationResult(self.host, "stop", method="Enumerate")
        chosen = [job.instance_id for job in self.iter_jobs(where=selection)]
        return self._stop_each(result, chosen, stop_options)

    @_timed("stop")
    def stop_many(self, job_ids: Iterable[str], /, **stop_options: Any) -> OperationResult:
        """:meth:`stop` each of ``job_ids`` (a cluster fan-out assigns each job to one node)."""
        return self._stop_each(OperationResult(self.host, "stop"), list(job_ids), stop_options)

    def _stop_each(
        self, result: OperationResult, job_ids: Sequence[str], stop_options: Mapping[str, Any]
    ) -> OperationResult:
        outcomes = [self.stop(job_id, **stop_options) for job_id in job_ids]
        result.jobs = [o.to_dict() for o in outcomes]
        if any(o.changed for o in outcomes):
            result.changed = True
        elif any(o.changed is None for o in outcomes):
            result.changed = None
        if self.check:  # as changed: any job a real run would stop
            would = [o.would_change for o in outcomes]
            result.would_change = True if any(would) else (None if None in would else False)
        failed = [o for o in outcomes if not o.ok]
        if failed:  # the most serious first: a wait that ran out of time only if nothing else failed
            result.error = min(failed, key=lambda o: o.error is not None and o.error.type == "wait_timeout").error
        result.notes.append(f"{len(job_ids)} job(s) selected, {len(failed)} failed")
        return result

    @_timed("wait")
    def wait(self, job_id: str, *, timeout: float = 300.0, require_success: bool = False) -> OperationResult:
        """Poll until the job is terminal or ``timeout`` passes (:class:`WaitTimedOut`).

        A job that is not there at the first read is not found (an error, whatever
        ``require_success`` says); only a job seen and then removed is reported as vanished.
        """
        result = OperationResult(self.host, "wait", job=job_id, method="Get")
        try:
            job, seen = self._poll(job_id, timeout, None, result)
        except HvjobError as exc:  # a time-out or a lost connection: keep the last state read
            result.error = exc
            return result
        if job is None:
            result.gone = True
            if not seen:
                result.error = ResourceNotFound(f"job {job_id} not found", host=self.host, operation="Get")
                return result
            result.notes.append("the job vanished while waited on; its final state is unknown")
            if require_success:
                result.error = JobFailed(f"job {job_id} vanished before its final state was seen", host=self.host)
            return result
        result.set_job(job)
        result.succeeded = job.succeeded
        if require_success and not job.succeeded:
            result.error = JobFailed(
                f"job {job_id} ended {job.state_label} with ErrorCode {job.error_code}"
                + (f": {job.error_description}" if job.error_description else ""),
                host=self.host,
            )
        return result

    @_timed("errors")
    def errors(self, job_id: str) -> OperationResult:
        """GetErrorEx (or GetError where that is not supported), decoded into typed dicts."""
        result = OperationResult(self.host, "errors", job=job_id, method="GetErrorEx")
        try:
            try:
                out = self.invoke(job_id, "GetErrorEx", [])
                values = out.out.get("Errors")
                if _not_supported("GetErrorEx", out.return_value, self.class_name):
                    raise NotSupported("GetErrorEx not supported", host=self.host)
            except NotSupported:
                result.method = "GetError"
                out = self.invoke(job_id, "GetError", [])
                values = out.out.get("Error")
        except ResourceNotFound as exc:  # as show and wait say it
            result.gone, result.error = True, exc
            return result
        result.return_value = out.return_value
        result.return_name = "Success" if out.return_value == 0 else "Failed"
        if out.return_value != 0:
            result.error = _method_failed(self.host, result.method or "GetError", out.return_value, result.return_name)
            return result
        items = values if isinstance(values, list) else ([] if values is None else [values])
        result.errors = [decode_embedded_instance(v) for v in items if isinstance(v, str)]
        return result

    # --- helpers ---------------------------------------------------------------------------

    def _kill_check(
        self, result: OperationResult, job_id: str, missing_ok: bool, skip_terminal: bool
    ) -> OperationResult:
        """Check mode of :meth:`kill`: read the job and say what kill would do, nothing more.

        Without ``skip_terminal`` kill sends KillJob to a finished job too, so check mode says so.
        """
        if skip_terminal:
            if self._read_live(result, job_id, missing_ok) is None:
                return result
        else:
            try:
                result.set_job(self.get_job(job_id))
            except ResourceNotFound as exc:
                return self._gone(result, exc, missing_ok)
        result.would_change = True
        result.notes.append("would call KillJob")
        state = result.job_state
        if state is not None and (state.is_terminal or (result.properties or {}).get("Cancellable") is False):
            why = f"already {state.label}" if state.is_terminal else "not cancellable"
            result.notes.append(f"the job is {why}: Hyper-V may refuse KillJob (32775)")
        return result

    def _read_live(self, result: OperationResult, job_id: str, missing_ok: bool) -> Job | None:
        """Read the job before acting on it. None when there is nothing to do, gone or already
        finished, with ``result`` saying which; else the running job."""
        try:
            job = self.get_job(job_id)
        except ResourceNotFound as exc:
            self._gone(result, exc, missing_ok)
            return None
        result.set_job(job)
        if job.is_terminal:
            result.notes.append(f"already {job.state_label}")
            return None
        return job

    def _gone(self, result: OperationResult, exc: ResourceNotFound, missing_ok: bool) -> OperationResult:
        result.gone, result.changed = True, False
        if not missing_ok:
            result.error = exc
        else:
            result.notes.append("the job is gone (not found)")
        return result

    def _reread_after_unknown(
        self, result: OperationResult, job_id: str, exc: HvjobError, wait_timeout: float | None
    ) -> OperationResult:
        """After an Invoke with no usable answer, read the job once and report from its state.

        ``changed`` stays None: whether this call is what stopped the job cannot be known. The
        result is ok when the job is now gone, finished or shutting down (then, with a wait, waited
        for); a job still running keeps the unknown outcome as the error.
        """
        result.changed = None
        try:
            job = self.get_job(job_id)
        except ResourceNotFound:
            result.gone = True
            result.notes.append(f"{result.method} outcome unknown ({exc.message}); the job is now gone")
            return result
        except HvjobError:
            result.error = exc
            return result
        result.set_job(job)
        if job.is_terminal or job.job_state is JobState.SHUTTING_DOWN:
            result.notes.append(f"{result.method} outcome unknown ({exc.message}); the job is now {job.state_label}")
            if wait_timeout is not None and not job.is_terminal:
                self._wait_guarded(result, job_id, None, wait_timeout)
        else:
            result.error = exc
        return result

    def _wait_guarded(
        self, result: OperationResult, job_id: str, tracker: EndpointReference | None, timeout: float
    ) -> HvjobError | None:
        """:meth:`_wait_after`, its failure (a time-out, a lost connection) kept as the result's error."""
        try:
            self._wait_after(result, job_id, tracker, timeout)
        except HvjobError as exc:
            result.error = exc
            return exc
        return None

    def _wait_after(
        self, result: OperationResult, job_id: str, tracker: EndpointReference | None, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        if tracker is not None and tracker.key_selectors().get("InstanceID"):
            tracker_id = tracker.key_selectors()["InstanceID"]
            label = f"tracking job {tracker_id} of job {job_id}"
            done, _ = self._poll(tracker_id, timeout, tracker.resolved_resource_uri(), None, label)
            result.notes.append(f"followed Job {tracker_id}: {done.state_label if done else 'gone'}")
        job, _ = self._poll(job_id, max(0.0, deadline - time.monotonic()), None, result)
        if job is None:
            result.gone = True
            result.notes.append("the job vanished while waited on")
        else:
            result.set_job(job)

    def _poll(
        self,
        job_id: str,
        timeout: float,
        resource_uri: str | None,
        result: OperationResult | None,
        label: str | None = None,
    ) -> tuple[Job | None, bool]:
        """Poll with backoff until terminal (the Job), gone (None) or the deadline (WaitTimedOut).

        Also returns whether the job was ever read. ``result`` gets each state read, so that a
        time-out still reports the last state seen.
        """
        deadline = time.monotonic() + timeout
        delay = self.poll_initial
        seen = False
        while True:
            try:
                job = self.get_job(job_id, resource_uri)
            except ResourceNotFound:
                return None, seen
            seen = True
            if result is not None:
                result.set_job(job)
            if self.on_poll is not None:
                self.on_poll(self.host, job)
            if job.is_terminal:
                return job, seen
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimedOut(
                    f"{label or f'job {job_id}'} still {job.state_label} ({job.percent_complete}%) after {timeout:g} s",
                    host=self.host,
                )
            self._pause(min(delay, remaining))
            delay = min(delay * 2, self.poll_max)


def _method_order(mode: Mode, method: Method) -> list[str]:
    if method == "request-state-change":
        return ["RequestStateChange"]
    if method == "kill-job":
        return ["KillJob"]
    if method == "kill-job-first":
        return ["KillJob", "RequestStateChange"]
    # auto: KillJob is an immediate kill, so a Terminate never escalates to it.
    return ["RequestStateChange", "KillJob"] if mode == "kill" else ["RequestStateChange"]


def _method_failed(host: str, method: str, value: int, name: str | None) -> MethodFailed:
    return MethodFailed(
        f"{method} returned {value} ({name})", host=host, method=method, return_value=value, return_name=name or ""
    )


def _check_id(job_id: str) -> None:
    if not isinstance(job_id, str) or not job_id.strip():
        raise UsageError("a job id (InstanceID) is required")


def decode_embedded_instance(text: str) -> dict[str, Any]:
    """An embedded error instance, as escaped CIM-XML text or as nested XML, to a typed dict.

    Windows' answer is undocumented (NOTES 3, open); both shapes are accepted. Values are typed by
    the CIM-XML ``TYPE`` attribute, or for nested XML by the class's schema; others stay text.
    """
    try:
        root = parse_xml(text.encode("utf-8"), max_bytes=1024 * 1024)
    except ProtocolError:
        return {"Message": text}
    data: dict[str, Any] = {}
    if local(root.tag) == "INSTANCE":
        data["__class"] = root.get("CLASSNAME")
        for prop in root:
            if not isinstance(prop.tag, str) or not local(prop.tag).startswith("PROPERTY"):
                continue
            values = [v.text or "" for v in prop.iter() if isinstance(v.tag, str) and local(v.tag) == "VALUE"]
            declared = schema.PropertyType(prop.get("TYPE") or "string", local(prop.tag) == "PROPERTY.ARRAY")
            raw: Any = values if declared.array else (values[0] if values else None)
            data[prop.get("NAME") or "?"] = jsonable(schema.typed_value(raw, declared))
        return data
    class_name = local(root.tag)
    found: dict[str, Any] = {}
    for child in root:
        if isinstance(child.tag, str):
            value = "".join(str(t) for t in child.itertext())
            name = local(child.tag)
            if name in found:
                existing = found[name]
                found[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
            else:
                found[name] = value
    data["__class"] = class_name
    data.update(jsonable(schema.typed_properties(class_name, found, fallback=None)))
    return data


__all__ = [
    "DEFAULT_CLASS",
    "DEFAULT_NAMESPACE",
    "Job",
    "JobClient",
    "JobFilter",
    "JobState",
    "OperationResult",
    "PlannedRequest",
    "SentRequest",
    "decode_embedded_instance",
    "killjob_return_name",
    "rsc_return_name",
    "state_label",
]
