"""Turn response bytes into typed results, checking them against the request first.

Checks (DSP0226 5.4.x, WS-Addressing): RelatesTo equals the request's MessageID (a normal reply
without one is refused; a fault without one is accepted and flagged, as Windows sends some);
Action equals the request's Action + "Response" or is a fault Action; Identify replies carry no
addressing headers. Elements are matched by namespace URI and local name, never by prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from lxml import etree

from hvjob.errors import ProtocolError, RelatesToMismatch, UnexpectedAction, WSManFault
from hvjob.wire import ns
from hvjob.wire.build import WsmanRequest
from hvjob.wire.cim import CimDatetime, CimInterval, EndpointReference, Scalar, decode_value
from hvjob.wire.faults import decode_fault
from hvjob.wire.schema import typed_properties
from hvjob.wire.xmlsafe import DEFAULT_MAX_BYTES, children, local, ns_of, parse_xml, text_of

PropertyValue: TypeAlias = Scalar | list[Scalar]


@dataclass(frozen=True)
class CimInstance:
    """A CIM instance: class name, resource URI (from the item's namespace) and its properties."""

    class_name: str | None
    resource_uri: str | None
    properties: Mapping[str, PropertyValue]

    def __getitem__(self, name: str) -> PropertyValue:
        return self.properties[name]

    def get(self, name: str, default: PropertyValue = None) -> PropertyValue:
        return self.properties.get(name, default)


@dataclass(frozen=True)
class MethodOutput:
    """Result of an Invoke: ReturnValue and every out parameter (EPRs decoded)."""

    method: str
    return_value: int
    out: Mapping[str, PropertyValue]

    @property
    def job(self) -> EndpointReference | None:
        value = self.out.get("Job")
        return value if isinstance(value, EndpointReference) else None


@dataclass(frozen=True)
class EnumerationPage:
    items: list[CimInstance]
    context: str | None
    end_of_sequence: bool


@dataclass(frozen=True)
class IdentifyResult:
    protocol_version: str | None
    product_vendor: str | None
    product_version: str | None
    security_profiles: list[str] = field(default_factory=list)
    extra: Mapping[str, str] = field(default_factory=dict)


Result: TypeAlias = CimInstance | MethodOutput | EnumerationPage | IdentifyResult | None


@dataclass(frozen=True)
class Envelope:
    """A parsed SOAP envelope: the addressing headers we check and the first body element."""

    action: str | None
    relates_to: str | None
    message_id: str | None
    body: etree._Element | None
    root: etree._Element

    @property
    def fault(self) -> etree._Element | None:
        if self.body is not None and local(self.body.tag) == "Fault" and ns_of(self.body.tag) == ns.SOAP:
            return self.body
        return None


def read_envelope(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, encoding: str | None = None) -> Envelope:
    """Parse bytes into an Envelope; anything that is not a SOAP 1.2 envelope is a ProtocolError."""
    root = parse_xml(data, max_bytes=max_bytes, encoding=encoding)
    if local(root.tag) != "Envelope" or ns_of(root.tag) != ns.SOAP:
        raise ProtocolError(f"response root is {local(root.tag) or root.tag!r}, not a SOAP 1.2 Envelope")
    header = body_wrapper = None
    for child in children(root):
        if ns_of(child.tag) == ns.SOAP and local(child.tag) == "Header":
            header = child
        elif ns_of(child.tag) == ns.SOAP and local(child.tag) == "Body":
            body_wrapper = child
    if body_wrapper is None:
        raise ProtocolError("SOAP envelope has no Body")
    action = relates_to = message_id = None
    if header is not None:
        for item in children(header):
            if ns_of(item.tag) != ns.ADDRESSING:
                continue
            name = local(item.tag)
            if name == "Action":
                action = text_of(item)
            elif name == "RelatesTo":
                relates_to = text_of(item)
            elif name == "MessageID":
                message_id = text_of(item)
    body = next(children(body_wrapper), None)
    return Envelope(action, relates_to, message_id, body, root)


def _same_id(a: str, b: str) -> bool:
    # UUIDs are case-insensitive (RFC 9562 4); Windows echoes ours but other servers may not.
    return a.strip().lower() == b.strip().lower()


def parse_response(
    request: WsmanRequest,
    data: bytes,
    *,
    host: str | None = None,
    http_status: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    encoding: str | None = None,
) -> Result:
    """Check ``data`` against ``request`` and decode it. Faults are raised as WSManFault."""

    def fail(cls: type[ProtocolError], message: str) -> ProtocolError:
        return cls(message, host=host, request_xml=request.payload, response_xml=data[:65536])

    try:
        envelope = read_envelope(data, max_bytes=max_bytes, encoding=encoding)
    except ProtocolError as exc:
        exc.host, exc.request_xml = host, request.payload
        exc.response_xml = data[:65536] if isinstance(data, bytes) else None
        raise
    fault = envelope.fault
    if fault is not None:
        if envelope.action is not None and envelope.action not in ns.FAULT_ACTIONS:
            raise fail(UnexpectedAction, f"fault carries the non-fault Action {envelope.action!r}")
        relates_missing = False
        if request.message_id is not None:
            if envelope.relates_to is None:
                relates_missing = True
            elif not _same_id(envelope.relates_to, request.message_id):
                raise fail(RelatesToMismatch, _mismatch(request.message_id, envelope.relates_to))
        raise decode_fault(
            fault,
            operation=request.operation,
            host=host,
            relates_to_missing=relates_missing,
            http_status=http_status,
            request_xml=request.payload,
            response_xml=data,
        )

    if request.operation == "Identify":
        if envelope.action or envelope.relates_to:
            raise fail(ProtocolError, "Identify reply carries addressing headers; Windows sends none")
        return _identify(envelope, fail)

    if request.message_id is not None:
        if envelope.relates_to is None:
            raise fail(RelatesToMismatch, "reply has no RelatesTo header")
        if not _same_id(envelope.relates_to, request.message_id):
            raise fail(RelatesToMismatch, _mismatch(request.message_id, envelope.relates_to))
    if envelope.action != request.expected_action:
        raise fail(UnexpectedAction, f"reply Action {envelope.action!r} does not answer {request.action!r}")
    try:
        return _decode_body(request, envelope, fail)
    except ProtocolError as exc:
        if exc.request_xml is None:
            exc.host, exc.request_xml, exc.response_xml = host, request.payload, data[:65536]
        raise


def _mismatch(expected: str, got: str) -> str:
    return f"reply RelatesTo {got!r} does not match the request MessageID {expected!r}"


def _decode_body(request: WsmanRequest, envelope: Envelope, fail: Any) -> Result:
    op = request.operation
    body = envelope.body
    if op == "Release":
        return None
    if body is None:
        raise fail(ProtocolError, f"{op} reply has an empty Body")
    if op == "Get":
        return decode_instance(body)
    if op in ("Enumerate", "Pull"):
        expected = "EnumerateResponse" if op == "Enumerate" else "PullResponse"
        if local(body.tag) != expected or ns_of(body.tag) != ns.ENUMERATION:
            raise fail(ProtocolError, f"{op} reply body is {local(body.tag)!r}, not {expected}")
        return decode_enumeration(body)
    if op == "Invoke":
        return decode_method_output(body, request.method or "")
    raise fail(ProtocolError, f"cannot decode a reply to {op}")


def decode_instance(element: etree._Element) -> CimInstance:
    """An instance element (typed ``p:CLASS`` or untyped ``w:XmlFragment``) to a CimInstance."""
    fragment = local(element.tag) == "XmlFragment" and ns_of(element.tag) == ns.WSMAN
    props: dict[str, PropertyValue] = {}
    for prop in children(element):
        name = local(prop.tag)
        value = decode_value(prop, fragment=fragment)
        if name in props:
            existing = props[name]
            if isinstance(existing, list):
                existing.append(value)
            else:
                props[name] = [existing, value]
        else:
            props[name] = value
    if fragment:
        return CimInstance(None, None, props)
    uri = ns_of(element.tag) or None
    return CimInstance(local(element.tag), uri, props)


def decode_enumeration(body: etree._Element) -> EnumerationPage:
    context: str | None = None
    end = False
    items: list[CimInstance] = []
    for child in children(body):
        name = local(child.tag)
        if name == "EnumerationContext":
            context = text_of(child) or None
        elif name == "EndOfSequence":
            end = True
        elif name == "Items":
            items.extend(decode_instance(item) for item in children(child))
    if context is None and not end:
        raise ProtocolError("enumeration reply has neither an EnumerationContext nor EndOfSequence")
    return EnumerationPage(items, context, end)


def decode_method_output(body: etree._Element, method: str) -> MethodOutput:
    name = local(body.tag)
    if not name.endswith("_OUTPUT"):
        raise ProtocolError(f"Invoke reply body is {name!r}, not a METHOD_OUTPUT")
    got_method = name[: -len("_OUTPUT")]
    if method and got_method != method:
        raise ProtocolError(f"reply is the output of {got_method!r}, not {method!r}")
    out: dict[str, PropertyValue] = {}
    return_text: str | None = None
    for param in children(body):
        pname = local(param.tag)
        if pname == "ReturnValue":
            return_text = text_of(param)
            continue
        value = decode_value(param)
        if pname in out:
            existing = out[pname]
            out[pname] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            out[pname] = value
    if return_text is None:
        raise ProtocolError(f"{got_method} output has no ReturnValue")
    try:
        return_value = int(return_text)
    except ValueError as exc:
        raise ProtocolError(f"{got_method} ReturnValue {return_text!r} is not an integer") from exc
    if not 0 <= return_value <= 0xFFFFFFFF:
        raise ProtocolError(f"{got_method} ReturnValue {return_value} is outside uint32")
    return MethodOutput(got_method, return_value, out)


def _identify(envelope: Envelope, fail: Any) -> IdentifyResult:
    body = envelope.body
    if body is None or local(body.tag) != "IdentifyResponse":
        raise fail(ProtocolError, "Identify reply has no IdentifyResponse")
    fields: dict[str, str] = {}
    profiles: list[str] = []
    for child in children(body):
        name = local(child.tag)
        if name == "SecurityProfiles":
            profiles = [text_of(p) or "" for p in children(child)]
        else:
            fields[name] = text_of(child) or ""
    return IdentifyResult(
        fields.pop("ProtocolVersion", None),
        fields.pop("ProductVendor", None),
        fields.pop("ProductVersion", None),
        profiles,
        fields,
    )


def describe(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Decode a saved response with no request at hand (``hvjob decode``).

    Returns a JSON-ready dict with ``kind`` in fault / method_output / instance / enumeration /
    identify, or ``empty`` for a reply whose Body is empty. Properties of a class hvjob knows are
    typed as the class declares them (the wire carries text). Raises ProtocolError when the input
    is not a usable WS-Man response.
    """
    envelope = read_envelope(data, max_bytes=max_bytes)
    fault = envelope.fault
    if fault is not None:
        err: WSManFault = decode_fault(fault, relates_to_missing=envelope.relates_to is None)
        return {"kind": "fault", **err.to_dict(), "fields": err.fields()}
    body = envelope.body
    if body is None:
        if envelope.action and envelope.action.endswith("Response"):
            # Release, Delete and Signal replies carry nothing but their Action.
            return {"kind": "empty", "action": envelope.action}
        raise ProtocolError("SOAP Body is empty and the reply has no Response Action")
    name = local(body.tag)
    if name == "IdentifyResponse":
        ident = _identify(envelope, lambda cls, msg: cls(msg))
        return {"kind": "identify", "identity": identify_dict(ident)}
    if name in ("EnumerateResponse", "PullResponse") and ns_of(body.tag) == ns.ENUMERATION:
        page = decode_enumeration(body)
        return {
            "kind": "enumeration",
            "items": [jsonable(typed_properties(i.class_name, i.properties, fallback=None)) for i in page.items],
            "context": page.context,
            "end_of_sequence": page.end_of_sequence,
        }
    if name.endswith("_OUTPUT"):
        output = decode_method_output(body, "")
        return {
            "kind": "method_output",
            "method": output.method,
            "return_value": output.return_value,
            "out": jsonable(output.out),
        }
    if envelope.action and not envelope.action.endswith("Response"):
        raise ProtocolError(f"not a response: Action {envelope.action!r}")
    instance = decode_instance(body)
    typed = typed_properties(instance.class_name, instance.properties, fallback=None)
    return {"kind": "instance", "class": instance.class_name, "properties": jsonable(typed)}


def identify_dict(ident: IdentifyResult) -> dict[str, Any]:
    return {
        "protocol_version": ident.protocol_version,
        "product_vendor": ident.product_vendor,
        "product_version": ident.product_version,
        "security_profiles": list(ident.security_profiles),
        **dict(ident.extra),
    }


def jsonable(value: Any) -> Any:
    """CIM values to JSON-ready data (datetimes ISO 8601, intervals in seconds, EPRs as dicts)."""
    if value is None or isinstance(value, (str, int, float)):  # most values; skips the ABC check below
        return value
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, CimDatetime):
        return value.value.isoformat()
    if isinstance(value, CimInterval):
        return value.value.total_seconds()
    if isinstance(value, EndpointReference):
        return {
            "resource_uri": value.resource_uri,
            "selectors": dict(value.selectors),
            "address": value.address,
        }
    return value
