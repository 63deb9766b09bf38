"""The property type tables against Microsoft's class documents, and the conversions they drive."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from conftest import REAL_RESPONSES
from hvjob.wire.cim import CimDatetime, CimInterval
from hvjob.wire.schema import CLASSES, PropertyType, property_types, typed_properties, typed_value

MS_DOCS = REAL_RESPONSES.parent / "ms-docs"
DOCUMENTED = {
    "CIM_ConcreteJob": "cim-concretejob.md",
    "Msvm_ConcreteJob": "msvm-concretejob.md",
    "Msvm_CollectionReferencePointExportJob": "msvm-collectionreferencepointexportjob.md",
    "Msvm_MigrationJob": "msvm-migrationjob.md",
    "Msvm_CollectionReferencePointService": "msvm-collectionreferencepointservice.md",
}


def _documented(page: str) -> dict[str, PropertyType]:
    text = (MS_DOCS / "hypervcluster-v2" / page).read_text(encoding="utf-8")
    match = re.search(r"``` syntax\n(.*?)```", text, re.S)
    assert match, page
    rows = re.findall(r"^\s+(\w+)\s+(\w+)(\[\])?(?:\s*=\s*[^;]+)?;", match.group(1), re.M)
    return {name: PropertyType(cim_type, bool(array)) for cim_type, name, array in rows}


@pytest.mark.parametrize("class_name", sorted(DOCUMENTED))
def test_table_matches_microsofts_class_syntax(class_name: str) -> None:
    if not MS_DOCS.is_dir():
        pytest.skip("../shared/reference/ms-docs is absent")
    assert CLASSES[class_name] == _documented(DOCUMENTED[class_name])


def test_error_table_matches_cim_error_xml() -> None:
    if not MS_DOCS.is_dir():
        pytest.skip("../shared/reference/ms-docs is absent")
    text = (MS_DOCS / "CIM_Error.xml").read_text(encoding="utf-8")
    rows = re.findall(r'<PROPERTY(\.ARRAY)? [^>]*NAME="(\w+)" TYPE="(\w+)"', text)
    assert CLASSES["CIM_Error"] == {name: PropertyType(t, bool(array)) for array, name, t in rows}


def test_job_values_get_their_declared_types() -> None:
    received = {
        "JobState": "4",
        "PercentComplete": " 40 ",
        "Cancellable": "true",
        "DeleteOnCompletion": "false",
        "ErrorCode": "0",
        "StartTime": CimDatetime(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)),
        "ElapsedTime": "00000000000140.000000:000",
        "TimeBeforeRemoval": CimInterval(dt.timedelta(minutes=5)),
        "TimeSubmitted": "20260102030405.000000+000",
        "OperationalStatus": "2",
        "VirtualMachineId": ["a", "b"],
        "Name": "0042",
        "SomeVendorProperty": "7",
    }
    typed = typed_properties("Msvm_CollectionReferencePointExportJob", received)
    assert typed["JobState"] == 4
    assert typed["PercentComplete"] == 40
    assert typed["Cancellable"] is True
    assert typed["DeleteOnCompletion"] is False
    assert typed["ErrorCode"] == 0
    assert typed["StartTime"] == received["StartTime"]
    assert typed["ElapsedTime"] == CimInterval(dt.timedelta(minutes=1, seconds=40))
    assert typed["TimeSubmitted"] == CimDatetime(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc))
    assert typed["OperationalStatus"] == [2]  # an array with one element is still an array
    assert typed["VirtualMachineId"] == ["a", "b"]
    assert typed["Name"] == "0042"  # a string stays a string, even when it looks like a number
    assert typed["SomeVendorProperty"] == "7"  # unknown to the schema: as received


def test_values_that_do_not_parse_stay_as_received() -> None:
    assert typed_value("lots", PropertyType("uint16")) == "lots"
    assert typed_value("maybe", PropertyType("boolean")) == "maybe"
    assert typed_value("not a date", PropertyType("datetime")) == "not a date"
    assert typed_value(None, PropertyType("uint16")) is None


def test_unknown_job_class_is_read_as_cim_concrete_job() -> None:
    assert property_types("Vendor_BackupJob") is CLASSES["CIM_ConcreteJob"]
    assert typed_properties("Vendor_BackupJob", {"JobState": "7"}) == {"JobState": 7}
