"""Build WS-Man request envelopes (Identify, Get, Enumerate, Pull, Release, Invoke).

Every builder returns a :class:`WsmanRequest`: the envelope bytes plus what the parser needs to
check the reply (MessageID, expected Action, operation). Values are set through lxml, never
spliced into strings. Header order follows what Windows clients send ([MS-WSMV] 3.1.4, pypsrp).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from lxml import etree

from hvjob.errors import UsageError
from hvjob.wire import ns
from hvjob.wire.cim import CimValue, _check_xml_chars, append_value

Operation = Literal["Identify", "Get", "Enumerate", "Pull", "Release", "Invoke"]

#: Operations that change nothing on the server and may be resent after a lost connection.
SAFE_OPERATIONS = frozenset({"Identify", "Get", "Enumerate", "Pull", "Release"})

_S, _A, _W, _P, _N = (f"{{{u}}}" for u in (ns.SOAP, ns.ADDRESSING, ns.WSMAN, ns.WSMAN_MS, ns.ENUMERATION))
_MUST = _S + "mustUnderstand"
_LANG = f"{{{ns.XML}}}lang"


@dataclass(frozen=True)
class HeaderOptions:
    """Per-session header values (DSP0226 6.1, [MS-WSMV] 2.2.4.x)."""

    to: str = "http://localhost:5985/wsman"
    operation_timeout_s: float = 20.0
    max_envelope_size: int = ns.DEFAULT_MAX_ENVELOPE_SIZE
    locale: str = "en-US"


@dataclass(frozen=True)
class WsmanRequest:
    """One request, ready to send, with what is needed to validate its reply."""

    operation: Operation
    payload: bytes
    message_id: str | None
    action: str | None
    resource_uri: str | None
    selectors: Mapping[str, str] = field(default_factory=dict)
    method: str | None = None

    @property
    def expected_action(self) -> str | None:
        return self.action + "Response" if self.action else None

    @property
    def safe_to_resend(self) -> bool:
        return self.operation in SAFE_OPERATIONS


def new_message_id() -> str:
    return "uuid:" + str(uuid.uuid4()).upper()


def format_timeout(seconds: float) -> str:
    """``20`` -> ``PT20S``; ``1.5`` -> ``PT1.500S`` (xs:duration as Windows writes it)."""
    if seconds <= 0:
        raise UsageError("operation timeout must be positive")
    if float(seconds).is_integer():
        return f"PT{int(seconds)}S"
    return f"PT{seconds:.3f}S"


def _envelope(
    options: HeaderOptions,
    action: str,
    resource_uri: str | None,
    message_id: str,
    selectors: Mapping[str, str] | None = None,
    option_set: Mapping[str, str] | None = None,
) -> tuple[etree._Element, etree._Element]:
    env = etree.Element(_S + "Envelope", nsmap=ns.NSMAP)
    header = etree.SubElement(env, _S + "Header")
    etree.SubElement(header, _A + "To").text = options.to
    reply_to = etree.SubElement(header, _A + "ReplyTo")
    etree.SubElement(reply_to, _A + "Address", {_MUST: "true"}).text = ns.ANONYMOUS
    etree.SubElement(header, _A + "Action", {_MUST: "true"}).text = action
    etree.SubElement(header, _A + "MessageID").text = message_id
    etree.SubElement(header, _W + "MaxEnvelopeSize", {_MUST: "true"}).text = str(options.max_envelope_size)
    etree.SubElement(header, _W + "Locale", {_MUST: "false", _LANG: options.locale})
    etree.SubElement(header, _P + "DataLocale", {_MUST: "false", _LANG: options.locale})
    etree.SubElement(header, _W + "OperationTimeout").text = format_timeout(options.operation_timeout_s)
    if resource_uri is not None:
        etree.SubElement(header, _W + "ResourceURI", {_MUST: "true"}).text = resource_uri
    if selectors:
        selector_set = etree.SubElement(header, _W + "SelectorSet")
        for name, value in selectors.items():
            if not isinstance(value, str):
                raise UsageError(f"selector {name!r} must be a string")
            _check_xml_chars(value)
            etree.SubElement(selector_set, _W + "Selector", Name=name).text = value
    if option_set:
        opts = etree.SubElement(header, _W + "OptionSet", {_MUST: "true"})
        for name, value in option_set.items():
            etree.SubElement(opts, _W + "Option", Name=name).text = value
    body = etree.SubElement(env, _S + "Body")
    return env, body


def _finish(env: etree._Element) -> bytes:
    return bytes(etree.tostring(env, xml_declaration=False, encoding="utf-8"))


def build_identify() -> WsmanRequest:
    """Identify ([MS-WSMV] 3.1.4.1.34; DSP0226 11): no addressing headers at all."""
    s, wsmid = f"{{{ns.SOAP}}}", f"{{{ns.WSMAN_IDENTITY}}}"
    env = etree.Element(s + "Envelope", nsmap={"s": ns.SOAP, "wsmid": ns.WSMAN_IDENTITY})
    etree.SubElement(env, s + "Header")
    body = etree.SubElement(env, s + "Body")
    etree.SubElement(body, wsmid + "Identify")
    return WsmanRequest("Identify", _finish(env), None, None, None)


def build_get(
    options: HeaderOptions, resource_uri: str, selectors: Mapping[str, str], *, message_id: str | None = None
) -> WsmanRequest:
    """WS-Transfer Get of one instance named by its key selectors."""
    mid = message_id or new_message_id()
    env, _ = _envelope(options, ns.ACTION_GET, resource_uri, mid, selectors)
    return WsmanRequest("Get", _finish(env), mid, ns.ACTION_GET, resource_uri, dict(selectors))


def build_enumerate(
    options: HeaderOptions,
    resource_uri: str,
    *,
    wql: str | None = None,
    optimize: bool = True,
    max_elements: int = 32,
    message_id: str | None = None,
) -> WsmanRequest:
    """WS-Enumeration Enumerate, optionally with a WQL filter and optimized enumeration.

    With a WQL filter, ``resource_uri`` must be the namespace URI ``.../wmi/<ns>/*``: Windows refuses
    a class URI with a filter (0x803380FB, ERROR_WSMAN_INVALID_URI_WMI_ENUM_WQL).
    """
    if wql is not None and not resource_uri.endswith("/*"):
        raise UsageError("a WQL filter needs the namespace resource URI '.../wmi/<namespace>/*'")
    if max_elements < 1:
        raise UsageError("max_elements must be at least 1")
    mid = message_id or new_message_id()
    env, body = _envelope(options, ns.ACTION_ENUMERATE, resource_uri, mid)
    enum = etree.SubElement(body, _N + "Enumerate")
    if optimize:
        etree.SubElement(enum, _W + "OptimizeEnumeration")
        etree.SubElement(enum, _W + "MaxElements").text = str(max_elements)
    if wql is not None:
        _check_xml_chars(wql)
        etree.SubElement(enum, _W + "Filter", Dialect=ns.DIALECT_WQL).text = wql
    return WsmanRequest("Enumerate", _finish(env), mid, ns.ACTION_ENUMERATE, resource_uri)


def build_pull(
    options: HeaderOptions,
    resource_uri: str,
    context: str,
    *,
    max_elements: int = 32,
    message_id: str | None = None,
) -> WsmanRequest:
    mid = message_id or new_message_id()
    env, body = _envelope(options, ns.ACTION_PULL, resource_uri, mid)
    pull = etree.SubElement(body, _N + "Pull")
    etree.SubElement(pull, _N + "EnumerationContext").text = context
    etree.SubElement(pull, _N + "MaxElements").text = str(max_elements)
    return WsmanRequest("Pull", _finish(env), mid, ns.ACTION_PULL, resource_uri)


def build_release(
    options: HeaderOptions, resource_uri: str, context: str, *, message_id: str | None = None
) -> WsmanRequest:
    mid = message_id or new_message_id()
    env, body = _envelope(options, ns.ACTION_RELEASE, resource_uri, mid)
    release = etree.SubElement(body, _N + "Release")
    etree.SubElement(release, _N + "EnumerationContext").text = context
    return WsmanRequest("Release", _finish(env), mid, ns.ACTION_RELEASE, resource_uri)


def build_invoke(
    options: HeaderOptions,
    resource_uri: str,
    method: str,
    parameters: Mapping[str, CimValue] | Sequence[tuple[str, CimValue]],
    selectors: Mapping[str, str] | None = None,
    *,
    message_id: str | None = None,
) -> WsmanRequest:
    """Invoke ``method`` on the instance (selectors) or class (no selectors) at ``resource_uri``.

    Action = resource URI + "/" + method; body ``<p:METHOD_INPUT xmlns:p=RESOURCE-URI>`` with one
    child per parameter in the order given, named as in the MOF (case-sensitive).
    """
    if not method or not method.replace("_", "").isalnum():
        raise UsageError(f"invalid method name {method!r}")
    mid = message_id or new_message_id()
    action = resource_uri + "/" + method
    env, body = _envelope(options, action, resource_uri, mid, selectors)
    items = parameters.items() if isinstance(parameters, Mapping) else parameters
    p = f"{{{resource_uri}}}"
    method_input = etree.SubElement(body, p + method + "_INPUT", nsmap={"p": resource_uri})
    for name, value in items:
        append_value(method_input, p + name, value)
    return WsmanRequest("Invoke", _finish(env), mid, action, resource_uri, dict(selectors or {}), method)
