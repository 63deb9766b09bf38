"""Method providers: what each simulated class does when one of its methods is invoked.

As in pywbem_mock, the WS-Man layer validates a request (instance, method, parameter names and
types) and then hands it to the provider registered for the class and method. A provider works on
the model, under its lock, and returns the ReturnValue and out parameters, or raises
:class:`CimFault` for an error WMI itself reports (rendered as a Windows-shaped fault). Users may
register their own with :func:`register_method_provider`.

Documented behaviour (../shared/reference/ms-docs/hypervcluster-v2): RequestStateChange 4
Terminate / 5 Kill, other values and finished jobs get Hyper-V's codes; KillJob(DeleteOnKill) takes
precedence over DeleteOnCompletion; GetError / GetErrorEx return embedded error instances for a
failed job and NULL otherwise; ExportReferencePoint returns 4096 and a Job reference. What the
documents leave open is decided by the profile (:mod:`hvjob.testing.sim.profile`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hvjob.jobs import JobState
from hvjob.testing.sim.model import (
    CONCRETE_JOB,
    EXPORT_JOB,
    JOB_CLASSES,
    MIGRATION_JOB,
    SERVICE_CLASS,
    ClusterModel,
    JobSpec,
    SimJob,
    error_properties,
)
from hvjob.wire.cim import EndpointReference

# Hyper-V's return codes of the Msvm_*Job methods (their pages in ms-docs).
COMPLETED = 0
TRANSITION_STARTED = 4096
TIMEOUT_PARAMETER_NOT_SUPPORTED = 4098  # DMTF; the method pages require it for an unsupported TimeoutPeriod
FAILED = 32768
NOT_SUPPORTED = 32770
INVALID_PARAMETER = 32773
INVALID_STATE = 32775
DMTF_NOT_SUPPORTED = 1  # DMTF's Not Supported (the KillJob pages, CIM_ConcreteJob.RequestStateChange)
KILLJOB_FAILED = 4


class CimFault(Exception):
    """An error WMI reports instead of a ReturnValue: ``kind`` picks the fault's shape (faults.py)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Reference:
    """A REF out parameter naming a job (rendered as the profile's job_reference/reference_uri say)."""

    class_name: str
    namespace: str
    instance_id: str


@dataclass(frozen=True)
class Embedded:
    """An embedded instance out parameter (GetError's Error, GetErrorEx's Errors)."""

    class_name: str
    properties: Mapping[str, Any]


@dataclass
class MethodCall:
    model: ClusterModel
    node: str
    class_name: str
    namespace: str
    method: str
    target: SimJob | None  # the job the method is invoked on, if a job
    selectors: Mapping[str, str]
    params: dict[str, Any]
    now: float
    user: str | None = None


@dataclass
class MethodOutcome:
    return_value: int
    out: dict[str, Any] = field(default_factory=dict)
    effect: str | None = None  # what the call changed, for the log; None when nothing


class MethodProvider(Protocol):
    #: in-parameter name -> CIM type (``boolean``, ``uint16``, ``string``, ``datetime``, ``reference``)
    parameters: Mapping[str, str]

    def invoke(self, call: MethodCall) -> MethodOutcome: ...


# --- job methods --------------------------------------------------------------------------------


def _stopped(job: SimJob, model: ClusterModel, state: JobState, now: float) -> str:
    model.finish(job, state, now)
    job.transition = None
    return state.label + (", removed" if job.removed else "")


class KillJob:
    parameters: Mapping[str, str] = {"DeleteOnKill": "boolean"}

    def invoke(self, call: MethodCall) -> MethodOutcome:
        profile, job = call.model.profile, call.target
        assert job is not None
        if profile.killjob == "returns-1":
            return MethodOutcome(DMTF_NOT_SUPPORTED)
        if profile.killjob == "returns-32770":
            return MethodOutcome(NOT_SUPPORTED)
        if profile.killjob == "faults":
            raise CimFault("not_supported", "This operation is not supported.")
        if job.terminal:
            code = {"invalid-state": INVALID_STATE, "success": COMPLETED, "failed": KILLJOB_FAILED}
            return MethodOutcome(code[profile.killjob_finished])
        if not job.cancellable:
            return MethodOutcome(INVALID_STATE if profile.uncancellable == "invalid-state" else NOT_SUPPORTED)
        # DeleteOnKill "takes precedence of the DeleteOnCompletion property" (the KillJob pages).
        job.delete_when_final = bool(call.params.get("DeleteOnKill"))
        return MethodOutcome(COMPLETED, effect=_stopped(job, call.model, JobState[_killed(call)], call.now))


def _killed(call: MethodCall) -> str:
    return "KILLED" if call.model.profile.killed_state == "Killed" else "TERMINATED"


class RequestStateChange:
    parameters: Mapping[str, str] = {"RequestedState": "uint16", "TimeoutPeriod": "datetime"}

    def invoke(self, call: MethodCall) -> MethodOutcome:
        model, profile, job = call.model, call.model.profile, call.target
        assert job is not None
        requested = call.params.get("RequestedState")
        timeout = call.params.get("TimeoutPeriod")
        if profile.request_state_change_support == "returns-1":
            return MethodOutcome(DMTF_NOT_SUPPORTED)
        if profile.request_state_change_support == "returns-32770":
            return MethodOutcome(NOT_SUPPORTED)
        if profile.request_state_change_support == "faults":
            raise CimFault("not_supported", "This operation is not supported.")
        if requested not in (2, 3, 4, 5, 6):
            return MethodOutcome(INVALID_PARAMETER)
        if (
            isinstance(timeout, dt.timedelta)
            and timeout > dt.timedelta(0)
            and profile.timeout_period == "not-supported"
        ):
            return MethodOutcome(TIMEOUT_PARAMETER_NOT_SUPPORTED)
        if job.terminal:
            return MethodOutcome(INVALID_STATE)
        if requested == 2:  # Start: only a job that is not running yet, or suspended
            if job.state in (JobState.NEW, JobState.SUSPENDED):
                job.state, job.state_changed_at, job.progress_from = JobState.RUNNING, call.now, call.now
                job.started_at = job.started_at if job.started_at is not None else call.now
                return MethodOutcome(COMPLETED, effect="Running")
            return MethodOutcome(INVALID_STATE)
        if requested in (3, 6):  # Suspend, Service: a reference point export cannot pause (a guess)
            return MethodOutcome(NOT_SUPPORTED)
        if not job.cancellable:
            return MethodOutcome(INVALID_STATE if profile.uncancellable == "invalid-state" else NOT_SUPPORTED)
        final = JobState.TERMINATED if requested == 4 else JobState[_killed(call)]
        if profile.request_state_change == "sync":
            return MethodOutcome(COMPLETED, effect=_stopped(job, model, final, call.now))
        if job.transition is not None:  # "earlier requests being overwritten" (the method pages)
            job.transition = (final, job.transition[1])
        else:
            model.begin_transition(job, final, call.now)
        effect = f"Shutting Down, then {final.label}"
        if profile.request_state_change == "async-without-job":
            return MethodOutcome(TRANSITION_STARTED, effect=effect)
        verb = "Terminate" if requested == 4 else "Kill"
        tracker = model.add_tracker(job, call.now, f"{verb} {job.id}")
        reference = Reference(tracker.class_name, tracker.namespace, tracker.id)
        return MethodOutcome(TRANSITION_STARTED, {"Job": reference}, effect=f"{effect}; tracked by {tracker.id}")


def _failed(job: SimJob) -> bool:
    return job.state == JobState.EXCEPTION or (job.terminal and job.error_code != 0)


class GetError:
    parameters: Mapping[str, str] = {}

    def invoke(self, call: MethodCall) -> MethodOutcome:
        job = call.target
        assert job is not None
        error = Embedded("Msvm_Error", error_properties(job)) if _failed(job) else None
        return MethodOutcome(COMPLETED, {"Error": error})


class GetErrorEx:
    parameters: Mapping[str, str] = {}

    def invoke(self, call: MethodCall) -> MethodOutcome:
        job = call.target
        assert job is not None
        errors = [Embedded("Msvm_Error", error_properties(job))] if _failed(job) else None
        return MethodOutcome(COMPLETED, {"Errors": errors})


# --- the service that creates export jobs -------------------------------------------------------


class ExportReferencePoint:
    """Msvm_CollectionReferencePointService.ExportReferencePoint: 4096 and a running export job."""

    parameters: Mapping[str, str] = {
        "ReferencePointCollection": "reference",
        "ExportDirectory": "string",
        "ExportSettingData": "string",
    }

    def invoke(self, call: MethodCall) -> MethodOutcome:
        collection = call.params.get("ReferencePointCollection")
        directory = call.params.get("ExportDirectory")
        if not isinstance(collection, EndpointReference) or not isinstance(directory, str) or not directory.strip():
            return MethodOutcome(INVALID_PARAMETER)
        selectors = collection.key_selectors()
        collection_id = selectors.get("InstanceID") or next(iter(selectors.values()), None)
        spec = JobSpec(
            id=str(uuid.uuid4()).upper(),
            node=call.node,
            class_name=EXPORT_JOB,
            namespace=call.namespace,
            state=JobState.RUNNING,
            percent=0,
            runs_for=call.model.profile.export_seconds,
            name="Export reference point",
            owner=call.user,
            export_directory=directory,
            collection_id=collection_id,
        )
        job = call.model.add_job(spec, now=call.now)
        return MethodOutcome(
            TRANSITION_STARTED,
            {"Job": Reference(EXPORT_JOB, job.namespace, job.id)},
            effect=f"created {job.id}",
        )


# --- the registry -------------------------------------------------------------------------------

_PROVIDERS: dict[tuple[str, str], MethodProvider] = {}


def register_method_provider(class_name: str, method: str, provider: MethodProvider) -> None:
    """Answer ``class_name.method`` with ``provider`` (replacing the built-in one, if any)."""
    _PROVIDERS[(class_name.lower(), method.lower())] = provider


def method_provider(class_name: str, method: str) -> tuple[str, MethodProvider] | None:
    """The method's MOF spelling and its provider; None when the class has no such method."""
    provider = _PROVIDERS.get((class_name.lower(), method.lower()))
    if provider is None:
        return None
    return _SPELLING.get((class_name.lower(), method.lower()), method), provider


_SPELLING: dict[tuple[str, str], str] = {}
for _class in JOB_CLASSES:
    for _provider in (KillJob(), RequestStateChange(), GetError(), GetErrorEx()):
        _name = type(_provider).__name__
        register_method_provider(_class, _name, _provider)
        _SPELLING[(_class.lower(), _name.lower())] = _name
register_method_provider(SERVICE_CLASS, "ExportReferencePoint", ExportReferencePoint())
_SPELLING[(SERVICE_CLASS.lower(), "exportreferencepoint")] = "ExportReferencePoint"

#: Methods that change a job; the others only read.
MUTATING = frozenset({"KillJob", "RequestStateChange", "ExportReferencePoint"})

__all__ = [
    "CONCRETE_JOB",
    "MIGRATION_JOB",
    "CimFault",
    "Embedded",
    "MethodCall",
    "MethodOutcome",
    "MethodProvider",
    "Reference",
    "method_provider",
    "register_method_provider",
]
