"""Decode ``s:Fault`` into the WSManFault tree of :mod:`hvjob.errors`.

Shapes handled (NOTES section 2, real captures): ``s:Code/s:Value`` + ``s:Subcode/s:Value``;
``s:Reason/s:Text`` (may be empty); ``s:Detail`` holding ``w:FaultDetail``, an
``f:WSManFault Code= Machine=`` whose ``f:Message`` holds text or an ``f:ProviderFault`` that holds
text, a nested ``f:WSManFault`` and/or ``f:ExtendedError/__ExtendedStatus``; or a
``p:MSFT_WmiError`` instance (no WSManFault). The innermost message is the most specific.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from hvjob.errors import WSManFault, fault_class_for
from hvjob.wire import ns
from hvjob.wire.cim import is_nil
from hvjob.wire.xmlsafe import children, local, ns_of, text_of

_WSMAN_RANGE = range(0x80338000, 0x80340000)


@dataclass
class _Level:
    code: int | None
    machine: str | None
    message: str | None
    provider: str | None = None


@dataclass
class _Found:
    levels: list[_Level] = field(default_factory=list)
    extended: dict[str, str | None] | None = None
    provider: str | None = None
    provider_text: str | None = None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


def _walk_wsman_fault(element: etree._Element, found: _Found) -> None:
    machine = element.get("Machine")
    level = _Level(code=_int(element.get("Code")), machine=machine.strip() or None if machine else None, message=None)
    found.levels.append(level)
    for message in children(element):
        if local(message.tag) != "Message" or ns_of(message.tag) != ns.WSMAN_FAULT:
            continue
        own_text = (message.text or "").strip()
        if own_text:
            level.message = own_text
        for child in children(message):
            if local(child.tag) == "ProviderFault":
                _walk_provider_fault(child, found)
            if own_text == "" and child.tail and child.tail.strip():
                level.message = child.tail.strip()


def _walk_provider_fault(element: etree._Element, found: _Found) -> None:
    found.provider = element.get("provider", "").strip() or found.provider
    text = (element.text or "").strip()
    if text:
        found.provider_text = text
    for child in children(element):
        name = local(child.tag)
        if name == "WSManFault":
            _walk_wsman_fault(child, found)
        elif name == "ExtendedError":
            for status in children(child):
                found.extended = {
                    local(prop.tag): (None if is_nil(prop) else text_of(prop)) for prop in children(status)
                }


def decode_fault(
    fault: etree._Element,
    *,
    operation: str | None = None,
    host: str | None = None,
    relates_to_missing: bool = False,
    http_status: int | None = None,
    request_xml: bytes | None = None,
    response_xml: bytes | None = None,
) -> WSManFault:
    """Turn an ``s:Fault`` element into the most specific WSManFault subclass."""
    soap_code = subcode = reason = fault_detail = None
    found = _Found()
    wmi_error: dict[str, str | None] | None = None
    for part in children(fault):
        name = local(part.tag)
        if name == "Code":
            for item in children(part):
                if local(item.tag) == "Value":
                    soap_code = text_of(item) or None
                elif local(item.tag) == "Subcode":
                    value = next((v for v in children(item) if local(v.tag) == "Value"), None)
                    subcode = text_of(value) or None
        elif name == "Reason":
            texts = [text_of(t) for t in children(part) if local(t.tag) == "Text"]
            reason = next((t for t in texts if t), None)
        elif name == "Detail":
            for detail in children(part):
                dname = local(detail.tag)
                if dname == "FaultDetail":
                    fault_detail = text_of(detail) or None
                elif dname == "WSManFault" and ns_of(detail.tag) == ns.WSMAN_FAULT:
                    _walk_wsman_fault(detail, found)
                elif dname == "MSFT_WmiError":
                    wmi_error = {local(p.tag): (None if is_nil(p) else text_of(p)) for p in children(detail)}

    outer = found.levels[0] if found.levels else None
    inner = found.levels[-1] if found.levels else None
    wsman_code = outer.code if outer else None
    wmi_code: int | None = None
    cim_status: int | None = None
    messages: list[str | None] = [lvl.message for lvl in reversed(found.levels)]
    if found.provider_text:
        messages.insert(0, found.provider_text)
    if wmi_error is not None:
        error_code = _int(wmi_error.get("error_Code"))
        if error_code is not None and error_code in _WSMAN_RANGE and wsman_code is None:
            wsman_code = error_code
        elif error_code is not None:
            wmi_code = error_code
        cim_status = _int(wmi_error.get("CIMStatusCode"))
        messages.insert(0, wmi_error.get("Message") or wmi_error.get("error_WindowsErrorMessage"))
    if inner is not None and outer is not None and inner.code is not None and inner.code != outer.code:
        wmi_code = wmi_code if wmi_code is not None else inner.code
    if found.extended is not None and wmi_code is None:
        wmi_code = _int(found.extended.get("StatusCode"))
    message = next((m for m in messages if m), None) or reason or subcode or "WS-Management fault"

    machine = inner.machine if inner else None
    reporting = outer.machine if outer else None
    if reporting == machine:
        reporting = None

    codes = [lvl.code for lvl in reversed(found.levels) if lvl.code is not None]
    if wmi_code is not None:
        codes.insert(0, wmi_code)
    if wsman_code is not None and wsman_code not in codes:
        codes.append(wsman_code)
    subcode_local = subcode.rsplit(":", 1)[-1] if subcode else None
    cls = fault_class_for(codes, subcode_local)
    return cls(
        message,
        soap_code=soap_code,
        fault_subcode=subcode,
        reason=reason,
        wsman_code=wsman_code,
        wmi_code=wmi_code,
        machine=machine,
        reporting_machine=reporting,
        fault_detail=fault_detail,
        provider=found.provider,
        cim_status_code=cim_status,
        extended_status=found.extended,
        operation=operation,
        relates_to_missing=relates_to_missing,
        http_status=http_status,
        host=host,
        request_xml=request_xml,
        response_xml=response_xml,
    )
