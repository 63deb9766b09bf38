"""Hyper-V job operations: list, show, kill, request_state_change, stop, wait, errors.

Semantics follow Microsoft's pages for the job classes (../shared/seeds, NOTES section 3): KillJob
return values exactly as the seed's table; RequestStateChange decoded per class family; ``stop`` is
idempotent (terminal or gone jobs are left alone) and honest (an Invoke whose outcome cannot be
known is never reported as success or as a method failure). Every operation returns an
:class:`OperationResult` instead of raising, so a fan-out can report every host.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hvjob.errors import (
    HvjobError,
    JobFailed,
    JobNotCancellable,
    MethodFailed,
    NotSupported,
    ProtocolError,
    RequestTimedOut,
    ResourceNotFound,
    UsageError,
)
from hvjob.transport import WsmanSession
from hvjob.wire import build, ns
from hvjob.wire.cim import CimDatetime, CimInterval, EndpointReference
from hvjob.wire.parse import CimInstance, EnumerationPage, MethodOutput, PropertyValue, identify_dict, jsonable
from hvjob.wire.xmlsafe import local, parse_xml

DEFAULT_NAMESPACE = "root/HyperVCluster/v2"
DEFAULT_CLASS = "Msvm_CollectionReferencePointExportJob"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")
_NAMESPACE = re.compile(r"[A-Za-z0-9_]+(?:/[A-Za-z0-9_]+)*")

Mode = Literal["kill", "terminate"]
Method = Literal["auto", "request-state-change", "kill-job", "kill-job-first"]
METHODS: tuple[str, ...] = ("auto", "request-state-change", "kill-job", "kill-job-first")


class JobState(enum.IntEnum):
    """CIM_ConcreteJob.JobState, plus Hyper-V's 32768 Completed with Warnings."""

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

# The seed's table, word for word (KillJob of Msvm_CollectionReferencePointExportJob).
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
    """The seed's meaning of a KillJob ReturnValue (unlisted values up to 32767 are DMTF Reserved)."""
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


def _not_supported(method: str, value: int, class_name: str) -> bool:
    """ReturnValue 1 (DMTF), or 32770, Hyper-V's Not Supported: from any method of an Msvm_ class."""
    return value == 1 or (value == 32770 and (method == "RequestStateChange" or class_name.startswith("Msvm_")))


# --- the job model -------------------------------------------------------------------------------


def _int(value: PropertyValue) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _bool(value: PropertyValue) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    return None


def _str(value: PropertyValue) -> str | None:
    return value if isinstance(value, str) else None


def _time(value: PropertyValue) -> dt.datetime | None:
    return value.value if isinstance(value, CimDatetime) else None


def _interval(value: PropertyValue) -> dt.timedelta | None:
    return value.value if isinstance(value, CimInterval) else None


@dataclass(frozen=True)
class Job:
    """A CIM_ConcreteJob instance, typed. ``properties`` keeps every property as received."""

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
    properties: Mapping[str, PropertyValue] = field(repr=False)

    @classmethod
    def from_instance(cls, instance: CimInstance) -> Job:
        p = instance.properties
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
            class_name=instance.class_name,
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
            properties=dict(p),
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

    def to_properties(self) -> dict[str, Any]:
        """JSON-ready properties keyed by WMI property name."""
        data: dict[str, Any] = jsonable(dict(self.properties))
        return data


# --- results -------------------------------------------------------------------------------------


@dataclass
class OperationResult:
    """What one operation did on one host. ``error`` is None when it succeeded."""

    host: str
    command: str
    job: str | None = None
    method: str | None = None
    return_value: int | None = None
    return_name: str | None = None
    changed: bool | None = False
    job_state_value: int | None = None
    error: HvjobError | None = None
    gone: bool = False
    succeeded: bool | None = None
    properties: dict[str, Any] | None = None
    jobs: list[dict[str, Any]] | None = None
    errors: list[dict[str, Any]] | None = None
    identity: dict[str, Any] | None = None
    elapsed_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        if self.error is None:
            return "ok"
        return "unreachable" if self.error.unreachable else "failed"

    def raise_for_error(self) -> OperationResult:
        if self.error is not None:
            raise self.error
        return self

    @property
    def job_state(self) -> JobState | None:
        value = self.job_state_value
        return JobState(value) if value is not None and value in JobState._value2member_map_ else None

    @property
    def job_seen(self) -> bool:
        """The host showed that it has the job: it answered about it, or its method ran on it.

        Hosts whose answer was lost or unusable are not counted: nothing is known of them.
        """
        if self.gone or self.job is None:
            return False
        if self.error is None:
            return True
        return self.error.type == "method" and self.return_value != 7  # 7: Not Found

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
        if self.command == "list" or self.jobs is not None:  # stop --all reports each job it touched
            data["jobs"] = self.jobs or []
        if self.command in ("show", "wait"):
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
        return data


def _timed(command: str) -> Callable[[Callable[..., OperationResult]], Callable[..., OperationResult]]:
    """Time an operation and turn any escaped hvjob error into the result's error."""

    def wrap(fn: Callable[..., OperationResult]) -> Callable[..., OperationResult]:
        def inner(self: JobClient, *args: Any, **kwargs: Any) -> OperationResult:
            start = time.monotonic()
            job = kwargs.get("job_id") or (args[0] if args and isinstance(args[0], str) else None)
            try:
                result = fn(self, *args, **kwargs)
            except HvjobError as exc:
                result = OperationResult(self.session.host, command, job=job, error=exc)
            result.elapsed_ms = (time.monotonic() - start) * 1000
            return result

        inner.__name__ = fn.__name__
        inner.__doc__ = fn.__doc__
        return inner

    return wrap


# --- the client ----------------------------------------------------------------------------------


class JobClient:
    """Job operations on one host, over one :class:`WsmanSession`."""

    def __init__(
        self,
        session: WsmanSession,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        class_name: str = DEFAULT_CLASS,
        poll_initial: float = 0.5,
        poll_max: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        check: bool = False,
    ) -> None:
        if not _IDENTIFIER.fullmatch(class_name):
            raise UsageError(f"invalid WMI class name {class_name!r}")
        if not _NAMESPACE.fullmatch(ns.normalize_namespace(namespace)):
            raise UsageError(f"invalid WMI namespace {namespace!r}")
        self.session = session
        self.namespace = ns.normalize_namespace(namespace)
        self.class_name = class_name
        self.resource_uri = ns.wmi_resource_uri(self.namespace, class_name)
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.sleep = sleep
        self.check = check

    @property
    def host(self) -> str:
        return self.session.host

    # --- primitives ------------------------------------------------------------------------

    def get_request(self, job_id: str, resource_uri: str | None = None) -> build.WsmanRequest:
        _check_id(job_id)
        return build.build_get(self.session.header_options, resource_uri or self.resource_uri, {"InstanceID": job_id})

    def enumerate_request(self, states: list[JobState] | None = None, *, max_elements: int = 32) -> build.WsmanRequest:
        """A WQL Enumerate of the class against ``.../wmi/<namespace>/*`` (NOTES 1)."""
        wql = f"SELECT * FROM {self.class_name}"  # noqa: S608 (class name validated as an identifier)
        if states:
            wql += " WHERE " + " OR ".join(f"JobState = {int(s)}" for s in states)
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

    def get_job(self, job_id: str, resource_uri: str | None = None) -> Job:
        """Get one job; raises ResourceNotFound when it is gone."""
        reply = self.session.send(self.get_request(job_id, resource_uri))
        if not isinstance(reply, CimInstance):
            raise ProtocolError("Get reply is not an instance", host=self.host)
        return Job.from_instance(reply)

    def iter_jobs(self, states: list[JobState] | None = None, *, max_elements: int = 32) -> Iterator[Job]:
        """Enumerate jobs of the class with WQL; releases the enumeration if abandoned or failed."""
        request = self.enumerate_request(states, max_elements=max_elements)
        uri = request.resource_uri or ""
        options = self.session.header_options
        page = self.session.send(request)
        context: str | None = None
        try:
            while True:
                if not isinstance(page, EnumerationPage):
                    raise ProtocolError("enumeration reply is not a page", host=self.host)
                context = page.context
                for item in page.items:
                    yield Job.from_instance(item)
                if page.end_of_sequence or not page.context:
                    context = None
                    return
                page = self.session.send(build.build_pull(options, uri, page.context, max_elements=max_elements))
        finally:
            if context:
                self._release(uri, context)

    def _release(self, uri: str, context: str) -> None:
        # Best effort: the server drops it after its EnumerationTimeout anyway.
        with contextlib.suppress(HvjobError):
            self.session.send(build.build_release(self.session.header_options, uri, context))

    def invoke(
        self, job_id: str, method: str, parameters: list[tuple[str, Any]], resource_uri: str | None = None
    ) -> MethodOutput:
        reply = self.session.send(self.invoke_request(job_id, method, parameters, resource_uri))
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

    # --- operations ------------------------------------------------------------------------

    @_timed("identify")
    def identify(self, *, anonymous: bool = False) -> OperationResult:
        """WS-Man Identify; authenticated unless ``anonymous`` (proves the credentials when it is)."""
        reply = self.session.identify(anonymous=anonymous)
        return OperationResult(self.host, "identify", method="Identify", identity=identify_dict(reply))

    @_timed("show")
    def show(self, job_id: str) -> OperationResult:
        try:
            job = self.get_job(job_id)
        except ResourceNotFound as exc:  # still an error, but one that says the job is gone
            return OperationResult(self.host, "show", job=job_id, method="Get", error=exc, gone=True)
        result = OperationResult(self.host, "show", job=job_id, method="Get", properties=job.to_properties())
        result.set_job(job)
        return result

    @_timed("list")
    def list(self, states: list[JobState] | None = None) -> OperationResult:
        jobs = list(self.iter_jobs(states))
        return OperationResult(self.host, "list", method="Enumerate", jobs=[j.to_properties() for j in jobs])

    @_timed("kill")
    def kill(
        self, job_id: str, *, delete_on_kill: bool = False, missing_ok: bool = False, skip_terminal: bool = False
    ) -> OperationResult:
        """KillJob(DeleteOnKill): the seed's method. Succeeds only on ReturnValue 0.

        ``skip_terminal`` reads the job first and leaves a finished one alone (unchanged), which makes
        a declarative "killed" state idempotent; without it KillJob is sent as asked.
        """
        result = OperationResult(self.host, "kill", job=job_id, method="KillJob")
        if self.check:
            return self._plan(result, job_id, missing_ok, "KillJob")
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
        """The idempotent stop: read, leave terminal or gone jobs alone, request Kill or Terminate."""
        if mode not in ("kill", "terminate"):
            raise UsageError(f"mode must be kill or terminate, not {mode!r}")
        if method not in METHODS:
            raise UsageError(f"method must be one of {', '.join(METHODS)}")
        result = OperationResult(self.host, "stop", job=job_id, method="Get")
        job = self._read_live(result, job_id, missing_ok)
        if job is None:
            return result
        if job.cancellable is False and not force:
            result.error = JobNotCancellable(
                f"job {job_id} is not cancellable (Cancellable = false); nothing was sent (use force to try)",
                host=self.host,
            )
            return result
        order = _method_order(mode, method)
        if self.check:
            result.changed, result.method = True, order[0]
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
                    return self._reread_after_unknown(result, job_id, exc)
                result.error = exc
                return result
            result.return_value = out.return_value
            result.return_name = return_name(name, out.return_value, self.class_name)
            if _not_supported(name, out.return_value, self.class_name) and not last:
                result.notes.append(f"{name} returned {out.return_value} ({result.return_name}); falling back")
                continue
            accepted = out.return_value == 0 or (name == "RequestStateChange" and out.return_value == 4096)
            if not accepted:
                result.changed = False
                result.error = _method_failed(self.host, name, out.return_value, result.return_name)
                return result
            result.changed = True
            result.job_state_value = None
            if wait:
                self._wait_after(result, job_id, out.job, timeout)
            return result
        return result

    @_timed("wait")
    def wait(self, job_id: str, *, timeout: float = 300.0, require_success: bool = False) -> OperationResult:
        """Poll until the job is terminal or ``timeout`` passes."""
        result = OperationResult(self.host, "wait", job=job_id, method="Get")
        job = self._poll(job_id, timeout, None)
        if job is None:
            result.gone = True
            result.notes.append("the job vanished while waited on; final state unknown")
            return result
        result.set_job(job)
        result.properties = job.to_properties()
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
        """GetErrorEx (or GetError where that is not supported), decoded into dicts."""
        result = OperationResult(self.host, "errors", job=job_id, method="GetErrorEx")
        try:
            out = self.invoke(job_id, "GetErrorEx", [])
            values = out.out.get("Errors")
            if _not_supported("GetErrorEx", out.return_value, self.class_name):
                raise NotSupported("GetErrorEx not supported", host=self.host)
        except NotSupported:
            result.method = "GetError"
            out = self.invoke(job_id, "GetError", [])
            values = out.out.get("Error")
        result.return_value = out.return_value
        result.return_name = "Success" if out.return_value == 0 else "Failed"
        if out.return_value != 0:
            result.error = _method_failed(self.host, result.method or "GetError", out.return_value, result.return_name)
            return result
        items = values if isinstance(values, list) else ([] if values is None else [values])
        result.errors = [decode_embedded_instance(v) for v in items if isinstance(v, str)]
        return result

    # --- helpers ---------------------------------------------------------------------------

    def _plan(self, result: OperationResult, job_id: str, missing_ok: bool, method: str) -> OperationResult:
        if self._read_live(result, job_id, missing_ok) is not None:
            result.changed = True
            result.notes.append(f"would call {method}")
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

    def _reread_after_unknown(self, result: OperationResult, job_id: str, exc: HvjobError) -> OperationResult:
        """After an Invoke with no usable answer, read the job once and report from its state."""
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
        if job.is_terminal:
            result.notes.append(f"{result.method} outcome unknown ({exc.message}); the job is now {job.state_label}")
        else:
            result.error = exc
        return result

    def _wait_after(
        self, result: OperationResult, job_id: str, tracker: EndpointReference | None, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        if tracker is not None and tracker.key_selectors().get("InstanceID"):
            tracker_id = tracker.key_selectors()["InstanceID"]
            done = self._poll(tracker_id, timeout, tracker.resolved_resource_uri())
            result.notes.append(f"followed Job {tracker_id}: {done.state_label if done else 'gone'}")
        job = self._poll(job_id, max(0.0, deadline - time.monotonic()), None)
        if job is None:
            result.gone = True
            result.notes.append("the job vanished while waited on")
        else:
            result.set_job(job)

    def _poll(self, job_id: str, timeout: float, resource_uri: str | None) -> Job | None:
        """Poll with backoff until terminal (the Job), gone (None), or the deadline (RequestTimedOut)."""
        deadline = time.monotonic() + timeout
        delay = self.poll_initial
        while True:
            try:
                job = self.get_job(job_id, resource_uri)
            except ResourceNotFound:
                return None
            if job.is_terminal:
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimedOut(f"job {job_id} still {job.state_label} after {timeout:g} s", host=self.host)
            self.sleep(min(delay, remaining))
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
    """An embedded error instance, as escaped CIM-XML text or as nested XML, to a dict.

    Windows' answer is undocumented (NOTES 3, open); both shapes are accepted.
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
            name = prop.get("NAME") or "?"
            data[name] = _typed(values, prop.get("TYPE")) if local(prop.tag) == "PROPERTY" else values
        return data
    data["__class"] = local(root.tag)
    for child in root:
        if isinstance(child.tag, str):
            value = "".join(str(t) for t in child.itertext())
            data[local(child.tag)] = int(value) if value.isdigit() else value
    return data


def _typed(values: list[str], cim_type: str | None) -> Any:
    if not values:
        return None
    value = values[0]
    if cim_type and (cim_type.startswith(("uint", "sint"))) and value.lstrip("-").isdigit():
        return int(value)
    if cim_type == "boolean":
        return value.lower() == "true"
    return value


__all__ = [
    "DEFAULT_CLASS",
    "DEFAULT_NAMESPACE",
    "Job",
    "JobClient",
    "JobState",
    "OperationResult",
    "decode_embedded_instance",
    "killjob_return_name",
    "rsc_return_name",
    "state_label",
]
