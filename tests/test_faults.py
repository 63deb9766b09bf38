"""Fault decoding over every real capture in ../shared/reference/real-responses/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import real_responses_dir
from hvjob import errors
from hvjob.wire.build import WsmanRequest
from hvjob.wire.parse import parse_response

# file -> (class, subcode, wsman_code, wmi_code, machine, reporting_machine, message start)
EXPECTED = {
    "omi_TestInnerMessageFaultResponse.xml": (
        errors.ResourceNotFound,
        "a:DestinationUnreachable",
        2150858752,
        None,
        "VMMUR-W12R2-02.SCX.com",
        "10.68.240.26",
        "The WS-Management service cannot process the request. The service cannot find",
    ),
    "omi_TestInternalErrorFaultResponse.xml": (
        errors.WSManFault,
        "w:InternalError",
        2152992672,
        None,
        "10.123.175.205",
        None,
        "Error with error code -2144108472 occurred while calling method WSManPluginReceiveResult.",
    ),
    "omi_TestTimeoutResponse.xml": (
        errors.OperationTimedOut,
        "w:TimedOut",
        2150858793,
        None,
        "10.123.175.205",
        None,
        "The WS-Management service cannot complete the operation within the time",
    ),
    "winrb_msft_wmierror_quotalimit.xml": (
        errors.QuotaExceeded,
        "w:QuotaLimit",
        2150859173,
        None,
        None,
        None,
        "The WS-Management service cannot process the request. This user is allowed a maximum number of 30",
    ),
    "winrb_omi_fault_internalerror.xml": (
        errors.WSManFault,
        "wsman:InternalError",
        None,
        None,
        None,
        None,
        "get-instance: instance name parameter is missing",
    ),
    "winrb_wmi_fault_cannotprocessfilter_extendedstatus_2008r2.xml": (
        errors.CannotProcessFilter,
        "n:CannotProcessFilter",
        2150858778,
        None,
        "vagrant-2008R2",
        "localhost",
        "The specified class does not exist in the given namespace.",
    ),
    "winrb_wmi_fault_cannotprocessfilter_v1_2008.xml": (
        errors.CannotProcessFilter,
        "n:CannotProcessFilter",
        2150858778,
        None,
        None,
        None,
        "The specified class does not exist in the given namespace.",
    ),
    "txwinrm_fault_max_concurrent_operations.xml": (
        errors.QuotaExceeded,
        "w:InternalError",
        2150859174,
        None,
        "103040106",
        None,
        "The WS-Management service cannot process the request. This user is allowed a maximum number of 15",
    ),
}


def _relates_to(data: bytes) -> str | None:
    match = re.search(rb"RelatesTo>\s*([^<\s]+)\s*<", data)
    return match.group(1).decode() if match else None


def _request_for(data: bytes, operation: str = "Get") -> WsmanRequest:
    """A request whose MessageID is the capture's RelatesTo, so the reply checks pass."""
    return WsmanRequest(operation, b"<request/>", _relates_to(data) or "uuid:REQUEST", "urn:x", "urn:r")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_fault_decodes(name: str) -> None:
    data = (real_responses_dir() / name).read_bytes()
    cls, subcode, wsman_code, wmi_code, machine, reporting, message = EXPECTED[name]
    with pytest.raises(errors.WSManFault) as info:
        parse_response(_request_for(data), data, host="node1")
    fault = info.value
    assert type(fault) is cls
    assert fault.fault_subcode == subcode
    assert fault.wsman_code == wsman_code
    assert fault.wmi_code == wmi_code
    assert fault.machine == machine
    assert fault.reporting_machine == reporting
    assert fault.message.startswith(message)
    assert fault.host == "node1"
    assert fault.response_xml == data
    assert fault.relates_to_missing == (_relates_to(data) is None)


def test_every_fault_capture_has_an_expectation() -> None:
    # A new fault capture without an EXPECTED entry would otherwise go unchecked.
    base = real_responses_dir()
    faults = {p.name for p in base.glob("*.xml") if b":Fault>" in p.read_bytes()}
    assert faults == set(EXPECTED)


def test_extended_status_and_wmi_error_fields() -> None:
    base = real_responses_dir()
    data = (base / "winrb_wmi_fault_cannotprocessfilter_extendedstatus_2008r2.xml").read_bytes()
    with pytest.raises(errors.WSManFault) as info:
        parse_response(_request_for(data), data)
    assert info.value.extended_status is not None
    assert info.value.extended_status["Operation"] == "ExecQuery"
    assert info.value.extended_status["Description"] is None
    assert info.value.provider == "WMI Provider"
    data = (base / "winrb_msft_wmierror_quotalimit.xml").read_bytes()
    with pytest.raises(errors.WSManFault) as info:
        parse_response(_request_for(data), data)
    assert info.value.cim_status_code == 27
    assert info.value.to_dict()["type"] == "wsman_fault"


def test_timed_out_fault_on_invoke_is_outcome_unknown() -> None:
    data = (real_responses_dir() / "omi_TestTimeoutResponse.xml").read_bytes()
    with pytest.raises(errors.OperationTimedOut) as info:
        parse_response(_request_for(data, "Invoke"), data)
    assert info.value.type == "outcome_unknown"
    with pytest.raises(errors.OperationTimedOut) as info:
        parse_response(_request_for(data, "Get"), data)
    assert info.value.type == "timeout"


def _yaml_faults() -> list[tuple[str, int, bytes]]:
    base = real_responses_dir()
    cases = []
    for path in sorted(Path(base).glob("pypsrp_*.yml")):
        doc = yaml.safe_load(path.read_text())
        for index, message in enumerate(doc["messages"]):
            response = message["response"].encode()
            if b"Fault>" in response:
                cases.append((path.name, index, response))
    return cases


def test_every_pypsrp_fault_yields_code_machine_and_innermost_message() -> None:
    cases = _yaml_faults()
    assert len(cases) >= 8
    for name, index, response in cases:
        codes = [int(c) for c in re.findall(rb'Code="(\d+)"', response)]
        machines = re.findall(rb'Machine="([^"]*)"', response)
        messages = re.findall(rb"<f:Message>([^<]+)</f:Message>", response)
        provider_text = re.findall(rb"<f:ProviderFault [^>]*>([^<]+)</f:ProviderFault>", response)
        with pytest.raises(errors.WSManFault) as info:
            parse_response(_request_for(response), response)
        fault = info.value
        where = f"{name}#{index}"
        assert fault.wsman_code == codes[0], where
        assert fault.machine == machines[-1].decode(), where
        innermost = (provider_text or messages)[-1].decode().strip()
        assert fault.message == innermost, where
