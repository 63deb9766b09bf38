"""The WS-Man faults the simulator sends, each in the shape of a real Windows capture.

Shapes (``../shared/reference/real-responses/``): a missing instance is
``omi_TestInnerMessageFaultResponse.xml`` (a:DestinationUnreachable, 2150858752 around the WMI
plug-in's ProviderFault and ``__ExtendedStatus``); bad selectors are
``pypsrp_test_psrp_is_alive_invalid_selectors.yml`` (w:InvalidSelectors 2150858843); a bad
parameter is ``pypsrp_test_winrs_fail_poll_process.yml`` (w:InvalidParameter, Code 87); a bad or
unknown WQL query is ``winrb_wmi_fault_cannotprocessfilter_extendedstatus_2008r2.xml``
(n:CannotProcessFilter 2150858778); a time-out is ``omi_TestTimeoutResponse.xml`` (w:TimedOut
2150858793). Which of these Windows sends for which mistake, and the WMI codes inside, are partly
guesses; docs/testing.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from hvjob.testing.sim.render import envelope, to_text
from hvjob.wire import ns

_S, _W = f"{{{ns.SOAP}}}", f"{{{ns.WSMAN}}}"
_F = f"{{{ns.WSMAN_FAULT}}}"
_LANG = f"{{{ns.XML}}}lang"
_XSI_NIL = f"{{{ns.XSI}}}nil"
_XSI_TYPE = f"{{{ns.XSI}}}type"

ADDRESSING_FAULT = "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault"
WSMAN_FAULT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
ENUMERATION_FAULT = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/fault"
FAULT_DETAIL = "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/"
WMI_PROVIDER = ("WMI Provider", "C:\\Windows\\system32\\WsmWmiPl.dll")
HYPERV_PROVIDER = "VmmsWmiInstanceAndMethodProvider"  # the job classes' Provider qualifier (their MOF)

NOT_FOUND_TEXT = (
    "The WS-Management service cannot process the request. The service cannot find the resource "
    "identified by the resource URI and selectors. "
)
SELECTORS_TEXT = (
    "The WS-Management service cannot process the request because the request contained invalid "
    "selectors for the resource. "
)
TIMEOUT_TEXT = "The WS-Management service cannot complete the operation within the time specified in OperationTimeout."
FILTER_TEXT = (
    "The data source could not process the filter. The filter might be missing or it might be invalid. "
    "Change the filter and try the request again.  "
)
WMI_ERROR_TEXT = "The WS-Management service cannot process the request. The WMI service or the WMI provider returned an unknown error: HRESULT 0x{code:x} "  # noqa: E501

# WMI's HRESULTs (wbemcli.h).
WBEM_E_FAILED = 0x80041001
WBEM_E_NOT_FOUND = 0x80041002
WBEM_E_ACCESS_DENIED = 0x80041003
WBEM_E_INVALID_PARAMETER = 0x80041008
WBEM_E_NOT_SUPPORTED = 0x8004100C
WBEM_E_INVALID_NAMESPACE = 0x8004100E
WBEM_E_INVALID_CLASS = 0x80041010
WBEM_E_INVALID_QUERY = 0x80041017
WBEM_E_INVALID_METHOD = 0x8004102E
WSMAN_WMI_PROVIDER_ERROR = 2150859081  # the outer code around a WMI HRESULT WinRM does not map (hand-written fixtures)


@dataclass(frozen=True)
class Fault:
    status: int
    body: str


@dataclass(frozen=True)
class Extended:
    """The WMI plug-in's __ExtendedStatus: what WMI was asked when it failed."""

    operation: str
    parameter_info: str
    provider: str
    status_code: int | None = None


def _fault(
    machine: str,
    relates_to: str | None,
    *,
    action: str,
    sender: bool,
    subcode: str,
    reason: str,
    code: int,
    detail: str | None = None,
    message: str | None = None,
    provider: tuple[str, str] | None = None,
    inner_code: int | None = None,
    inner_machine: str | None = None,
    provider_text: str | None = None,
    extended: Extended | None = None,
    status: int = 500,
) -> Fault:
    root, body = envelope(action, relates_to, "fault")
    fault = etree.SubElement(body, _S + "Fault")
    code_element = etree.SubElement(fault, _S + "Code")
    etree.SubElement(code_element, _S + "Value").text = "s:Sender" if sender else "s:Receiver"
    etree.SubElement(etree.SubElement(code_element, _S + "Subcode"), _S + "Value").text = subcode
    etree.SubElement(etree.SubElement(fault, _S + "Reason"), _S + "Text", {_LANG: "en-US"}).text = reason
    details = etree.SubElement(fault, _S + "Detail")
    if detail:
        etree.SubElement(details, _W + "FaultDetail").text = FAULT_DETAIL + detail
    outer = etree.SubElement(
        details, _F + "WSManFault", {"Code": str(code), "Machine": machine}, nsmap={"f": ns.WSMAN_FAULT}
    )
    text = etree.SubElement(outer, _F + "Message")
    if provider is None:
        text.text = message or reason
    else:
        provider_fault = etree.SubElement(text, _F + "ProviderFault", provider=provider[0], path=provider[1])
        if provider_text is not None:
            provider_fault.text = provider_text
        else:
            inner = etree.SubElement(
                provider_fault,
                _F + "WSManFault",
                {"Code": str(inner_code if inner_code is not None else code), "Machine": inner_machine or machine},
                nsmap={"f": ns.WSMAN_FAULT},
            )
            etree.SubElement(inner, _F + "Message").text = message or reason
        if extended is not None:
            _append_extended(etree.SubElement(provider_fault, _F + "ExtendedError"), extended)
    return Fault(status, to_text(root))


def _append_extended(parent: etree._Element, extended: Extended) -> None:
    uri = ns.CIM_SCHEMA_PREFIX + "__ExtendedStatus"
    status = etree.SubElement(
        parent, f"{{{uri}}}__ExtendedStatus", nsmap={"xsi": ns.XSI, "p": uri, "cim": ns.CIM_COMMON}
    )
    status.set(_XSI_TYPE, "p:__ExtendedStatus_Type")
    p = f"{{{uri}}}"
    description = etree.SubElement(status, p + "Description", {_XSI_NIL: "true", _XSI_TYPE: "cim:cimString"})
    del description
    etree.SubElement(status, p + "Operation", {_XSI_TYPE: "cim:cimString"}).text = extended.operation
    etree.SubElement(status, p + "ParameterInfo", {_XSI_TYPE: "cim:cimString"}).text = extended.parameter_info
    etree.SubElement(status, p + "ProviderName", {_XSI_TYPE: "cim:cimString"}).text = extended.provider
    code = etree.SubElement(status, p + "StatusCode", {_XSI_TYPE: "cim:cimUnsignedInt"})
    if extended.status_code is None:
        code.set(_XSI_NIL, "true")
    else:
        code.text = str(extended.status_code)


def fqdn(machine: str) -> str:
    return machine if "." in machine else f"{machine.lower()}.hvjob.test"


def not_found(
    machine: str, relates_to: str | None, operation: str, path: str, provider: str = HYPERV_PROVIDER
) -> Fault:
    """The instance is not there (a gone job): the omi capture's shape."""
    return _fault(
        machine,
        relates_to,
        action=ADDRESSING_FAULT,
        sender=True,
        subcode="a:DestinationUnreachable",
        reason=NOT_FOUND_TEXT,
        code=2150858752,
        detail="InvalidResourceURI",
        provider=WMI_PROVIDER,
        inner_machine=fqdn(machine),
        extended=Extended(operation, path, provider),
    )


def unknown_resource(machine: str, relates_to: str | None, operation: str, path: str, wmi_code: int) -> Fault:
    """An unknown namespace or class: the missing-instance shape around WMI's own code (a guess)."""
    texts = {WBEM_E_INVALID_NAMESPACE: "Invalid namespace ", WBEM_E_INVALID_CLASS: "Invalid class "}
    return _fault(
        machine,
        relates_to,
        action=ADDRESSING_FAULT,
        sender=True,
        subcode="a:DestinationUnreachable",
        reason=NOT_FOUND_TEXT,
        code=2150858752,
        detail="InvalidResourceURI",
        provider=WMI_PROVIDER,
        inner_code=wmi_code,
        inner_machine=fqdn(machine),
        message=texts.get(wmi_code, NOT_FOUND_TEXT),
        extended=Extended(operation, path, "WinMgmt", wmi_code),
    )


def invalid_selectors(machine: str, relates_to: str | None, detail: str = "UnexpectedSelectors") -> Fault:
    return _fault(
        machine,
        relates_to,
        action=WSMAN_FAULT,
        sender=True,
        subcode="w:InvalidSelectors",
        reason=SELECTORS_TEXT,
        code=2150858843,
        detail=detail,
        provider=WMI_PROVIDER,
    )


def invalid_parameter(machine: str, relates_to: str | None, message: str, detail: str = "InvalidValue") -> Fault:
    """A parameter WMI refuses (unknown name, wrong type): the pypsrp capture's shape, Code 87."""
    return _fault(
        machine,
        relates_to,
        action=WSMAN_FAULT,
        sender=True,
        subcode="w:InvalidParameter",
        reason="The parameter is incorrect. ",
        code=87,
        detail=detail,
        provider=WMI_PROVIDER,
        provider_text=message,
    )


def cannot_process_filter(machine: str, relates_to: str | None, query: str, message: str) -> Fault:
    """WQL that WMI refuses or a class it does not have: the WinRb 2008 R2 capture's shape."""
    return _fault(
        machine,
        relates_to,
        action=ENUMERATION_FAULT,
        sender=True,
        subcode="n:CannotProcessFilter",
        reason=FILTER_TEXT,
        code=2150858778,
        provider=WMI_PROVIDER,
        inner_machine=fqdn(machine),
        message=message,
        extended=Extended("ExecQuery", query, "WinMgmt"),
    )


def wql_on_class_uri(machine: str, relates_to: str | None) -> Fault:
    """A WQL filter sent to a class URI: ERROR_WSMAN_INVALID_URI_WMI_ENUM_WQL 0x803380FB (doc; shape guessed)."""
    return _fault(
        machine,
        relates_to,
        action=WSMAN_FAULT,
        sender=True,
        subcode="w:InvalidParameter",
        reason=(
            "The WS-Management service cannot process the request because the resource URI does not support "
            "a WQL filter: for a WQL enumeration use the URI of the namespace, ending in /*. "
        ),
        code=0x803380FB,
    )


def invalid_enumeration_context(machine: str, relates_to: str | None) -> Fault:
    """A Pull or Release of a context the service does not have (expired or released; shape guessed)."""
    return _fault(
        machine,
        relates_to,
        action=ENUMERATION_FAULT,
        sender=False,
        subcode="n:InvalidEnumerationContext",
        reason="The enumeration context supplied in the message is not valid. ",
        code=2150858787,
    )


def timed_out(machine: str, relates_to: str | None) -> Fault:
    """w:TimedOut 2150858793: the omi capture's shape. On an Invoke the method may still complete."""
    return _fault(
        machine,
        relates_to,
        action=WSMAN_FAULT,
        sender=False,
        subcode="w:TimedOut",
        reason=TIMEOUT_TEXT,
        code=2150858793,
    )


def wmi_error(machine: str, relates_to: str | None, wmi_code: int, message: str, operation: str, path: str) -> Fault:
    """A WMI HRESULT inside the provider fault (not supported, generic failure, invalid method...)."""
    return _fault(
        machine,
        relates_to,
        action=WSMAN_FAULT,
        sender=False,
        subcode="w:InternalError",
        reason=WMI_ERROR_TEXT.format(code=wmi_code),
        code=WSMAN_WMI_PROVIDER_ERROR,
        provider=WMI_PROVIDER,
        inner_code=wmi_code,
        inner_machine=fqdn(machine),
        message=message,
        extended=Extended(operation, path, HYPERV_PROVIDER, wmi_code),
    )


def action_not_supported(machine: str, relates_to: str | None) -> Fault:
    return _fault(
        machine,
        relates_to,
        action=ADDRESSING_FAULT,
        sender=True,
        subcode="a:ActionNotSupported",
        reason="The action is not supported by the service. ",
        code=2150858797,
    )


def access_denied(machine: str, relates_to: str | None) -> Fault:
    return _fault(
        machine,
        relates_to,
        action=WSMAN_FAULT,
        sender=True,
        subcode="w:AccessDenied",
        reason="Access is denied. ",
        code=5,
    )


def quota_exceeded(machine: str, relates_to: str | None) -> Fault:
    """The user's maximum of concurrent operations exceeded: ``txwinrm_fault_max_concurrent_operations.xml``
    (s:Receiver, w:InternalError, 2150859174 = 0x803381A6; the quota of shells is w:QuotaLimit instead)."""
    return _fault(
        machine,
        relates_to,
        action=WSMAN_FAULT,
        sender=False,
        subcode="w:InternalError",
        reason=(
            "The WS-Management service cannot process the request. The maximum number of concurrent operations "
            "for this user has been exceeded. Close existing operations for this user, or raise the quota for "
            "this user."
        ),
        code=2150859174,
        message=(
            "The WS-Management service cannot process the request. This user is allowed a maximum number of "
            "15 concurrent operations, which has been exceeded. Close existing operations for this user, or "
            "raise the quota for this user."
        ),
    )


#: Faults a ``{"kind": "fault", "fault": NAME}`` injection answers with, instead of running the method.
INJECTABLE = ("access_denied", "not_supported", "generic_failure", "quota", "not_found", "timed_out")


def injected(name: str, machine: str, relates_to: str | None, operation: str, path: str) -> Fault:
    if name == "access_denied":
        return access_denied(machine, relates_to)
    if name == "not_supported":
        return wmi_error(machine, relates_to, WBEM_E_NOT_SUPPORTED, "This operation is not supported.", operation, path)
    if name == "generic_failure":
        return wmi_error(machine, relates_to, WBEM_E_FAILED, "Generic failure ", operation, path)
    if name == "quota":
        return quota_exceeded(machine, relates_to)
    if name == "not_found":
        return not_found(machine, relates_to, operation, path)
    if name == "timed_out":
        return timed_out(machine, relates_to)
    raise ValueError(f"unknown fault {name!r}; one of {', '.join(INJECTABLE)}")
