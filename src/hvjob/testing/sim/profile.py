"""The behaviour profile: a named switch for every answer of Hyper-V that nobody has recorded.

Each switch lists every plausible answer (docs/protocol.md, "Open questions", names the question
each one covers); the first value is the default. The suite runs hvjob against every value of
every switch (pairwise), so that hvjob works whichever answer a real cluster gives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hvjob.errors import UsageError

#: switch -> its values, the default first.
SWITCHES: dict[str, tuple[str, ...]] = {
    # KillJob: supported; always ReturnValue 1 (DMTF Not Supported); always 32770 (Hyper-V's vendor
    # Not Supported); or a WMI fault 0x8004100C. Microsoft's pages disagree (NOTES 3).
    "killjob": ("supported", "returns-1", "returns-32770", "faults"),
    # RequestStateChange itself, as for KillJob: supported, ReturnValue 1, 32770, or the WMI fault.
    "request_state_change_support": ("supported", "returns-1", "returns-32770", "faults"),
    # RequestStateChange(4|5): 0 with the job already final; 4096 and a Job reference to an
    # Msvm_ConcreteJob tracking the change; 4096 without a reference. Async jobs pass Shutting Down.
    "request_state_change": ("sync", "async", "async-without-job"),
    # The JobState a Kill (RequestStateChange 5 or KillJob) leaves the job in.
    "killed_state": ("Killed", "Terminated"),
    # A REF out parameter: a:Address + a:ReferenceParameters directly, or inside a:EndpointReference.
    "job_reference": ("wrapped", "bare"),
    # The ResourceURI in a REF: the WMI form, or the DMTF cim-schema form with __cimnamespace.
    "reference_uri": ("wmi", "dmtf"),
    # Embedded instances (GetError/GetErrorEx): escaped CIM-XML text, or nested XML elements.
    "geterrorex": ("text", "nested"),
    # Whether root/HyperVCluster/v2 on one node shows (and acts on) the jobs of the other nodes.
    "jobs_visible_on": ("owner", "every-node"),
    # KillJob on a job that has already finished: 32775 Invalid State, 0 (nothing to do), 4 Failed.
    "killjob_finished": ("invalid-state", "success", "failed"),
    # A stop request on a job whose Cancellable is false: 32775 Invalid State, or 32770 Not Supported.
    "uncancellable": ("invalid-state", "not-supported"),
    # A non-zero TimeoutPeriod: ignored, or 4098 (Use Of Timeout Parameter Not Supported, DMTF).
    "timeout_period": ("ignored", "not-supported"),
}

#: number -> default: simulated seconds an asynchronous stop spends in Shutting Down, and an export
#: started by ExportReferencePoint runs before it completes.
NUMBERS: dict[str, float] = {"transition_seconds": 2.0, "export_seconds": 600.0}


@dataclass(frozen=True)
class Profile:
    killjob: str = "supported"
    request_state_change_support: str = "supported"
    request_state_change: str = "sync"
    killed_state: str = "Killed"
    job_reference: str = "wrapped"
    reference_uri: str = "wmi"
    geterrorex: str = "text"
    jobs_visible_on: str = "owner"
    killjob_finished: str = "invalid-state"
    uncancellable: str = "invalid-state"
    timeout_period: str = "ignored"
    transition_seconds: float = 2.0
    export_seconds: float = 600.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, *, where: str = "profile") -> Profile:
        """A profile from ``{switch: value}``; a UsageError names the switch and its allowed values."""
        return cls().replace(data or {}, where=where)

    def replace(self, changes: Mapping[str, Any], *, where: str = "profile") -> Profile:
        values: dict[str, Any] = {}
        for key, value in changes.items():
            name = str(key).replace("-", "_")
            if name in SWITCHES:
                allowed = SWITCHES[name]
                match = next((a for a in allowed if a.lower() == str(value).strip().lower()), None)
                if match is None:
                    raise UsageError(f"{where}: {name}: {value!r} is not one of {', '.join(allowed)}")
                values[name] = match
            elif name in NUMBERS:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise UsageError(f"{where}: {name}: expected a number of seconds, not {value!r}")
                values[name] = float(value)
            else:
                known = ", ".join([*SWITCHES, *NUMBERS])
                raise UsageError(f"{where}: unknown switch {key!r} (known: {known})")
        return dataclasses.replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
