"""Render the simulator's replies with lxml, in the shapes of real Windows captures.

Envelopes (``../shared/reference/real-responses/``): ``s:Envelope xml:lang="en-US"`` with the
namespace declarations Windows puts on it; header order Action, MessageID, To, RelatesTo; a fresh
MessageID per reply. Instances: ``p:CLASS`` with ``xmlns:p`` = the class's resource URI and
``xsi:type="p:CLASS_Type"``, properties in case-insensitive alphabetical order, nulls as
``xsi:nil="true"``; a WQL property list gives ``w:XmlFragment`` items whose children are
unqualified (txwinrm captures). Value types come from :data:`hvjob.wire.schema.CLASSES`, the table
hvjob reads with, so the two cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping
from typing import Any

from lxml import etree

from hvjob.testing.sim.profile import Profile
from hvjob.testing.sim.providers import Embedded, Reference
from hvjob.wire import ns
from hvjob.wire.build import new_message_id
from hvjob.wire.cim import CimDatetime, CimInterval
from hvjob.wire.schema import CLASSES

_S, _A, _W, _N = (f"{{{u}}}" for u in (ns.SOAP, ns.ADDRESSING, ns.WSMAN, ns.ENUMERATION))
_CIM = f"{{{ns.CIM_COMMON}}}"
_XSI_NIL = f"{{{ns.XSI}}}nil"
_XSI_TYPE = f"{{{ns.XSI}}}type"
_LANG = f"{{{ns.XML}}}lang"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
EVENTING = "http://schemas.xmlsoap.org/ws/2004/08/eventing"

#: The declarations on the envelope of each kind of reply (as in the captures).
ENVELOPE_NAMESPACES: dict[str, dict[str, str]] = {
    "transfer": {"s": ns.SOAP, "a": ns.ADDRESSING, "x": TRANSFER, "w": ns.WSMAN, "p": ns.WSMAN_MS},
    "enumeration": {"s": ns.SOAP, "a": ns.ADDRESSING, "n": ns.ENUMERATION, "w": ns.WSMAN},
    "fault": {
        "s": ns.SOAP,
        "a": ns.ADDRESSING,
        "x": TRANSFER,
        "e": EVENTING,
        "n": ns.ENUMERATION,
        "w": ns.WSMAN,
        "p": ns.WSMAN_MS,
    },
}


def envelope(action: str, relates_to: str | None, kind: str = "transfer") -> tuple[etree._Element, etree._Element]:
    """An envelope with Windows' header (Action, MessageID, To, RelatesTo); returns it and its Body."""
    root = etree.Element(_S + "Envelope", {_LANG: "en-US"}, nsmap=ENVELOPE_NAMESPACES[kind])
    header = etree.SubElement(root, _S + "Header")
    etree.SubElement(header, _A + "Action").text = action
    etree.SubElement(header, _A + "MessageID").text = new_message_id()
    etree.SubElement(header, _A + "To").text = ns.ANONYMOUS
    if relates_to is not None:
        etree.SubElement(header, _A + "RelatesTo").text = relates_to
    return root, etree.SubElement(root, _S + "Body")


def to_text(root: etree._Element) -> str:
    return etree.tostring(root, encoding="unicode")


def _sorted(names: Iterable[str]) -> list[str]:
    return sorted(names, key=str.lower)


@functools.lru_cache(maxsize=256)
def _layout(class_name: str, namespace: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The class's resource URI and, in Windows' order, each documented property's name and tag."""
    uri = ns.wmi_resource_uri(namespace, class_name)
    return uri, tuple((name, f"{{{uri}}}{name}") for name in _sorted(CLASSES.get(class_name, {})))


def append_instance(
    parent: etree._Element,
    class_name: str,
    namespace: str,
    properties: Mapping[str, Any],
    profile: Profile,
    *,
    fragment: tuple[str, ...] | None = None,
) -> etree._Element:
    """A typed instance (every property of the class's table), or a w:XmlFragment of ``fragment``."""
    table = CLASSES.get(class_name, {})
    if fragment is not None:
        element = etree.SubElement(parent, _W + "XmlFragment", nsmap={"xsi": ns.XSI, "w": ns.WSMAN})
        for name in fragment:
            _append_value(element, name, properties.get(name), profile, qualified=False)
        return element
    uri, layout = _layout(class_name, namespace)
    element = etree.SubElement(
        parent, f"{{{uri}}}{class_name}", {_XSI_TYPE: f"p:{class_name}_Type"}, nsmap=_instance_nsmap(uri)
    )
    if not layout or any(name not in table for name in properties):  # not a documented class: render what is there
        layout = tuple((name, f"{{{uri}}}{name}") for name in _sorted(set(table) | set(properties)))
    get = properties.get
    for name, tag in layout:
        value = get(name)
        if value is None:
            etree.SubElement(element, tag, _NIL)
        elif type(value) is str:
            etree.SubElement(element, tag).text = value
        else:
            _append_value(element, tag, value, profile)
    return element


@functools.lru_cache(maxsize=256)
def _instance_nsmap(uri: str) -> dict[str, str]:
    return {"xsi": ns.XSI, "p": uri, "cim": ns.CIM_COMMON}


_NIL = {_XSI_NIL: "true"}


def _append_value(
    parent: etree._Element,
    tag: str,
    value: Any,
    profile: Profile,
    *,
    qualified: bool = True,
) -> None:
    if isinstance(value, (list, tuple)):
        if not value:
            etree.SubElement(parent, tag).set(_XSI_NIL, "true")  # WMI sends an empty array as NULL
            return
        for item in value:
            _append_value(parent, tag, item, profile, qualified=qualified)
        return
    element = etree.SubElement(parent, tag)
    if value is None:
        element.set(_XSI_NIL, "true")
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif isinstance(value, int):
        element.text = str(int(value))  # JobState's number, not its label
    elif isinstance(value, float):
        element.text = str(value)
    elif isinstance(value, str):
        element.text = value
    elif isinstance(value, dt.datetime):
        wrapper = _CIM + "Datetime" if qualified else "Datetime"
        etree.SubElement(element, wrapper).text = CimDatetime(value).to_wire()
    elif isinstance(value, dt.timedelta):
        wrapper = _CIM + "Interval" if qualified else "Interval"
        etree.SubElement(element, wrapper).text = CimInterval(value).to_wire()
    elif isinstance(value, Reference):
        append_reference(element, value, profile)
    elif isinstance(value, Embedded):
        append_embedded(element, value, profile)
    else:
        raise TypeError(f"cannot render a {type(value).__name__} ({tag})")


def append_reference(element: etree._Element, reference: Reference, profile: Profile) -> None:
    """A REF value: an endpoint reference, bare or in a:EndpointReference, WMI or DMTF URI."""
    target = element
    if profile.job_reference == "wrapped":
        target = etree.SubElement(element, _A + "EndpointReference")
    etree.SubElement(target, _A + "Address").text = ns.ANONYMOUS
    params = etree.SubElement(target, _A + "ReferenceParameters")
    if profile.reference_uri == "dmtf":
        uri = ns.CIM_SCHEMA_PREFIX + reference.class_name
    else:
        uri = ns.wmi_resource_uri(reference.namespace, reference.class_name)
    etree.SubElement(params, _W + "ResourceURI").text = uri
    selectors = etree.SubElement(params, _W + "SelectorSet")
    etree.SubElement(selectors, _W + "Selector", Name="InstanceID").text = reference.instance_id
    etree.SubElement(selectors, _W + "Selector", Name="__cimnamespace").text = reference.namespace


def append_embedded(element: etree._Element, embedded: Embedded, profile: Profile) -> None:
    """An embedded instance: escaped CIM-XML (DSP0201 INSTANCE) text, or nested elements."""
    table = CLASSES.get(embedded.class_name, {})
    if profile.geterrorex == "nested":
        uri = ns.WMI_URI_PREFIX + "root/HyperVCluster/v2/" + embedded.class_name
        inner = etree.SubElement(element, f"{{{uri}}}{embedded.class_name}", nsmap={"p": uri, "xsi": ns.XSI})
        inner.set(_XSI_TYPE, f"p:{embedded.class_name}_Type")
        for name in _sorted(embedded.properties):
            _append_value(inner, f"{{{uri}}}{name}", embedded.properties[name], profile)
        return
    instance = etree.Element("INSTANCE", CLASSNAME=embedded.class_name)
    for name in _sorted(embedded.properties):
        value = embedded.properties[name]
        cim_type = table[name].cim_type if name in table else "string"
        if isinstance(value, (list, tuple)):
            prop = etree.SubElement(instance, "PROPERTY.ARRAY", NAME=name, TYPE=cim_type)
            if value:
                array = etree.SubElement(prop, "VALUE.ARRAY")
                for item in value:
                    etree.SubElement(array, "VALUE").text = str(item)
        else:
            prop = etree.SubElement(instance, "PROPERTY", NAME=name, TYPE=cim_type)
            if value is not None:
                etree.SubElement(prop, "VALUE").text = (
                    ("TRUE" if value else "FALSE") if isinstance(value, bool) else str(value)
                )
    element.text = etree.tostring(instance, encoding="unicode")  # escaped by lxml on output


def get_response(
    relates_to: str | None, class_name: str, namespace: str, properties: Mapping[str, Any], profile: Profile
) -> str:
    root, body = envelope(ns.ACTION_GET + "Response", relates_to)
    append_instance(body, class_name, namespace, properties, profile)
    return to_text(root)


def method_response(
    relates_to: str | None,
    resource_uri: str,
    method: str,
    return_value: int,
    out: Mapping[str, Any],
    profile: Profile,
) -> str:
    """``p:METHOD_OUTPUT`` with the out parameters, then ReturnValue (openwsman's Windows capture)."""
    root, body = envelope(f"{resource_uri}/{method}Response", relates_to)
    output = etree.SubElement(
        body,
        f"{{{resource_uri}}}{method}_OUTPUT",
        nsmap={"xsi": ns.XSI, "p": resource_uri, "cim": ns.CIM_COMMON},
    )
    for name, value in out.items():
        _append_value(output, f"{{{resource_uri}}}{name}", value, profile)
    etree.SubElement(output, f"{{{resource_uri}}}ReturnValue").text = str(return_value)
    return to_text(root)


def enumeration_response(
    relates_to: str | None,
    *,
    pull: bool,
    context: str | None,
    items: Iterable[tuple[str, str, Mapping[str, Any]]],
    fragment: tuple[str, ...] | None,
    end: bool,
    optimized: bool,
    profile: Profile,
) -> str:
    """EnumerateResponse (w:Items when optimized) or PullResponse (n:Items), as in the captures."""
    action = ns.ACTION_PULL if pull else ns.ACTION_ENUMERATE
    root, body = envelope(action + "Response", relates_to, "enumeration")
    response = etree.SubElement(body, _N + ("PullResponse" if pull else "EnumerateResponse"))
    if context is not None or not pull:
        etree.SubElement(response, _N + "EnumerationContext").text = context or ""
    if pull or optimized:
        container = etree.SubElement(response, (_N if pull else _W) + "Items")
        for class_name, namespace, properties in items:
            append_instance(container, class_name, namespace, properties, profile, fragment=fragment)
    if end:
        etree.SubElement(response, (_N if pull else _W) + "EndOfSequence")
    return to_text(root)


def release_response(relates_to: str | None) -> str:
    root, _ = envelope(ns.ACTION_RELEASE + "Response", relates_to, "enumeration")
    return to_text(root)
