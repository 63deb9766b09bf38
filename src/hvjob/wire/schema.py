"""The CIM types of the properties of the classes hvjob reads, from Microsoft's MOF for each class.

WS-Man carries most values as bare text (``<p:JobState>4</p:JobState>``), so only the schema can
say that ``4`` is a uint16 and ``true`` a boolean. :func:`typed_properties` turns received values
into the types the class declares: integers, booleans, datetimes and intervals (:mod:`hvjob.wire.cim`
values, which :func:`hvjob.wire.parse.jsonable` writes as ISO 8601 text and as seconds). A
property the schema does not know, or a value that does not parse as its declared type, is kept as
received (text), so nothing is ever lost or invented.

The tables are Microsoft's class syntax blocks (``../shared/reference/ms-docs/hypervcluster-v2``,
and ``CIM_Error.xml`` for the error classes), transcribed; tests/test_schema.py checks them against
those documents. ``MSCluster_*`` are not among those documents: only the properties hvjob reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hvjob.errors import ProtocolError
from hvjob.wire.cim import CimDatetime, CimInterval, parse_datetime, parse_interval


@dataclass(frozen=True)
class PropertyType:
    """A property's CIM type (``uint16``, ``string``, ``boolean``, ``datetime``, ...) and arity."""

    cim_type: str
    array: bool = False


def _mof(text: str) -> dict[str, PropertyType]:
    """``"uint16 JobState, string Name[]"`` to {name: PropertyType}."""
    table: dict[str, PropertyType] = {}
    for item in text.split(","):
        cim_type, name = item.split()
        array = name.endswith("[]")
        table[name.removesuffix("[]")] = PropertyType(cim_type, array)
    return table


# CIM_ConcreteJob with everything it inherits (cim-concretejob.md).
_CONCRETE_JOB = (
    "string Caption, string Description, string ElementName, datetime InstallDate, uint16 OperationalStatus[], "
    "string StatusDescriptions[], string Status, uint16 HealthState, uint16 CommunicationStatus, "
    "uint16 DetailedStatus, uint16 OperatingStatus, uint16 PrimaryStatus, string JobStatus, datetime TimeSubmitted, "
    "datetime ScheduledStartTime, datetime StartTime, datetime ElapsedTime, uint32 JobRunTimes, uint8 RunMonth, "
    "sint8 RunDay, sint8 RunDayOfWeek, datetime RunStartInterval, uint16 LocalOrUtcTime, datetime UntilTime, "
    "string Notify, string Owner, uint32 Priority, uint16 PercentComplete, boolean DeleteOnCompletion, "
    "uint16 ErrorCode, string ErrorDescription, uint16 RecoveryAction, string OtherRecoveryAction, "
    "string InstanceID, string Name, uint16 JobState, datetime TimeOfLastStateChange, datetime TimeBeforeRemoval"
)
# What every Hyper-V job class adds (msvm-concretejob.md and its siblings).
_MSVM_JOB = _CONCRETE_JOB + ", boolean Cancellable, string ErrorSummaryDescription"

# CIM_Error (CIM_Error.xml); Msvm_Error derives from it without documented additions here.
_ERROR = (
    "uint16 ErrorType, string OtherErrorType, string OwningEntity, string MessageID, string Message, "
    "string MessageArguments[], uint16 PerceivedSeverity, uint16 ProbableCause, string ProbableCauseDescription, "
    "string RecommendedActions[], string ErrorSource, uint16 ErrorSourceFormat, string OtherErrorSourceFormat, "
    "uint32 CIMStatusCode, string CIMStatusCodeDescription"
)

CLASSES: dict[str, dict[str, PropertyType]] = {
    "CIM_ConcreteJob": _mof(_CONCRETE_JOB),
    "Msvm_ConcreteJob": _mof(_MSVM_JOB + ", uint16 JobType"),
    "Msvm_CollectionReferencePointExportJob": _mof(
        _MSVM_JOB + ", string CollectionId, string ReferencePointGroupId, string BaseReferencePointGroupId, "
        "string VirtualMachineId[], string ExportDirectory, string ExportedDisks[], string ExportedLogFilePaths[], "
        "string ExportedConfigFilePaths[], string ExportedRuntimeFilePaths[]"
    ),
    "Msvm_MigrationJob": _mof(
        _MSVM_JOB + ", uint16 MigrationType, string VirtualSystemName, string DestinationHost, "
        "string NewSystemSettingData, string NewResourceSettingData[], uint16 JobType"
    ),
    "Msvm_CollectionReferencePointService": _mof(
        "string InstanceID, string Caption, string Description, string ElementName, datetime InstallDate, "
        "uint16 OperationalStatus[], string StatusDescriptions[], string Status, uint16 HealthState, "
        "uint16 CommunicationStatus, uint16 DetailedStatus, uint16 OperatingStatus, uint16 PrimaryStatus, "
        "uint16 EnabledState, string OtherEnabledState, uint16 RequestedState, uint16 EnabledDefault, "
        "datetime TimeOfLastStateChange, uint16 AvailableRequestedStates[], uint16 TransitioningToState, "
        "string SystemCreationClassName, string SystemName, string CreationClassName, string Name, "
        "string PrimaryOwnerName, string PrimaryOwnerContact, string StartMode, boolean Started"
    ),
    "CIM_Error": _mof(_ERROR),
    "Msvm_Error": _mof(_ERROR),
    # Not in the documents above: the properties of the cluster classes that hvjob reads.
    "MSCluster_Cluster": _mof("string Name, string Fqdn"),
    "MSCluster_Node": _mof("string Name, uint32 State, string NodeInstanceID"),
}

#: Any job class hvjob does not know by name is read as what it must derive from.
FALLBACK_CLASS = "CIM_ConcreteJob"

_INTEGER = frozenset({"uint8", "sint8", "uint16", "sint16", "uint32", "sint32", "uint64", "sint64"})


def property_types(class_name: str | None, fallback: str | None = FALLBACK_CLASS) -> Mapping[str, PropertyType]:
    """The property table of ``class_name``; for a class not listed, ``fallback``'s (none if None)."""
    table = CLASSES.get(class_name or "")
    if table is None:
        return CLASSES[fallback] if fallback else {}
    return table


def typed_value(value: Any, declared: PropertyType | None) -> Any:
    """``value`` converted to ``declared``; unchanged when it is unknown or does not parse."""
    if declared is None or value is None:
        return value
    if isinstance(value, list):
        return [_scalar(v, declared.cim_type) for v in value]
    scalar = _scalar(value, declared.cim_type)
    return [scalar] if declared.array else scalar


def _scalar(value: Any, cim_type: str) -> Any:
    if not isinstance(value, str):
        return value  # already typed by the wire (xsi:type, cim:Datetime, cim:Interval, an EPR)
    text = value.strip()
    if cim_type in _INTEGER:
        try:
            return int(text)
        except ValueError:
            return value
    if cim_type == "boolean":
        return {"true": True, "false": False, "1": True, "0": False}.get(text.lower(), value)
    if cim_type in ("real32", "real64"):
        try:
            return float(text)
        except ValueError:
            return value
    if cim_type == "datetime" and text:
        return _datetime_or_interval(text, value)
    return value


def _datetime_or_interval(text: str, original: str) -> CimDatetime | CimInterval | str:
    """CIM's datetime type holds both points in time and intervals (DMTF ``...:000``, or ``P...``)."""
    try:
        if text.endswith(":000") or text.startswith("P"):
            return CimInterval(parse_interval(text))
        parsed: dt.datetime = parse_datetime(text)
        return CimDatetime(parsed)
    except ProtocolError:
        return original


def typed_properties(
    class_name: str | None, properties: Mapping[str, Any], fallback: str | None = FALLBACK_CLASS
) -> dict[str, Any]:
    """Every property of an instance of ``class_name`` converted to its declared type."""
    table = property_types(class_name, fallback)
    return {name: typed_value(value, table.get(name)) for name, value in properties.items()}
