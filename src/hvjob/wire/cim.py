"""Typed CIM values as they travel in WS-Man (DSP0230 WS-CIM mapping).

Encoding (NOTES section 1): booleans ``true``/``false``; integers in decimal; null as
``xsi:nil="true"``; arrays repeat the element; datetimes ``<cim:Datetime>``; intervals
``<cim:Interval>`` (xs:duration); references as endpoint references.

In a ``w:XmlFragment`` (the items of a WQL ``select <properties>``) the property elements and the
value wrappers carry no namespace: ``<LastBootUpTime><Datetime>...</Datetime></LastBootUpTime>``
(NOTES section 5, seen). Decoding takes ``fragment=True`` for those and gives the same values as
for the typed form. Whether an endpoint reference inside a fragment keeps its WS-Addressing and
WS-Man namespaces is not recorded; both spellings are read.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from lxml import etree

from hvjob.errors import ProtocolError, UsageError
from hvjob.wire import ns
from hvjob.wire.xmlsafe import children, local, ns_of, text_of


@dataclass(frozen=True)
class CimDatetime:
    """A CIM datetime. ``value`` keeps the wire text so nothing is lost in a round trip."""

    value: dt.datetime

    def to_wire(self) -> str:
        value = self.value
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        text = value.astimezone(dt.timezone.utc).isoformat()
        return text.replace("+00:00", "Z")


@dataclass(frozen=True)
class CimInterval:
    """A CIM interval (xs:duration ``PnDTnHnMnS`` on the wire)."""

    value: dt.timedelta

    def to_wire(self) -> str:
        total = self.value
        if total < dt.timedelta(0):
            raise UsageError("a CIM interval cannot be negative")
        days = total.days
        seconds = total.seconds
        micro = total.microseconds
        hours, rem = divmod(seconds, 3600)
        minutes, secs = divmod(rem, 60)
        sec_text = f"{secs}" if not micro else f"{secs}.{micro:06d}".rstrip("0")
        return f"P{days}DT{hours}H{minutes}M{sec_text}S"


@dataclass(frozen=True)
class EndpointReference:
    """A WS-Addressing endpoint reference naming a CIM instance (e.g. a ``Job`` out parameter)."""

    resource_uri: str
    selectors: Mapping[str, str] = field(default_factory=dict)
    address: str = ns.ANONYMOUS

    @property
    def cim_namespace(self) -> str | None:
        return self.selectors.get("__cimnamespace")

    @property
    def class_name(self) -> str:
        return self.resource_uri.rstrip("/").rsplit("/", 1)[-1]

    def key_selectors(self) -> dict[str, str]:
        """Selectors without ``__cimnamespace`` (that one goes into the URI, not the SelectorSet)."""
        return {k: v for k, v in self.selectors.items() if k != "__cimnamespace"}

    def resolved_resource_uri(self) -> str:
        """A ``.../wmi/<ns>/<class>`` URI, turning a DMTF URI + __cimnamespace into the WMI form."""
        if self.cim_namespace and not self.resource_uri.startswith(ns.WMI_URI_PREFIX):
            return ns.wmi_resource_uri(self.cim_namespace, self.class_name)
        return self.resource_uri


Scalar: TypeAlias = bool | int | str | CimDatetime | CimInterval | EndpointReference | None
CimValue: TypeAlias = Scalar | Sequence[Scalar]

# --- encoding ------------------------------------------------------------------------------------

_CIM = f"{{{ns.CIM_COMMON}}}"
_XSI_NIL = f"{{{ns.XSI}}}nil"


def append_value(parent: etree._Element, tag: str, value: CimValue) -> None:
    """Append ``<tag>value</tag>`` (repeated for arrays) under ``parent``; the XML library escapes."""
    if isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, (list, tuple)):
                raise UsageError("nested arrays are not CIM values")
            append_value(parent, tag, item)
        return
    element = etree.SubElement(parent, tag)
    if value is None:
        element.set(_XSI_NIL, "true")
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif isinstance(value, int):
        element.text = str(int(value))  # an IntEnum's number, not its name
    elif isinstance(value, str):
        _check_xml_chars(value)
        element.text = value
    elif isinstance(value, CimDatetime):
        etree.SubElement(element, _CIM + "Datetime").text = value.to_wire()
    elif isinstance(value, CimInterval):
        etree.SubElement(element, _CIM + "Interval").text = value.to_wire()
    elif isinstance(value, EndpointReference):
        append_epr(element, value)
    else:
        raise UsageError(f"cannot encode a {type(value).__name__} as a CIM value")


def append_epr(element: etree._Element, epr: EndpointReference) -> None:
    a, w = f"{{{ns.ADDRESSING}}}", f"{{{ns.WSMAN}}}"
    etree.SubElement(element, a + "Address").text = epr.address
    params = etree.SubElement(element, a + "ReferenceParameters")
    etree.SubElement(params, w + "ResourceURI").text = epr.resource_uri
    if epr.selectors:
        selector_set = etree.SubElement(params, w + "SelectorSet")
        for name, val in epr.selectors.items():
            _check_xml_chars(val)
            etree.SubElement(selector_set, w + "Selector", Name=name).text = val


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _check_xml_chars(text: str) -> None:
    if _XML_INVALID.search(text):
        raise UsageError("value holds characters that XML 1.0 cannot carry (control characters)")


# --- decoding ------------------------------------------------------------------------------------

_DMTF_DATETIME = re.compile(r"^(\d{14})\.(\d{6})([+-])(\d{3})$")
_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")
_DMTF_INTERVAL = re.compile(r"^(\d{8})(\d{2})(\d{2})(\d{2})\.(\d{6}):000$")


def parse_datetime(text: str) -> dt.datetime:
    """Parse ``2013-03-09T02:57:32Z`` (WS-CIM) or ``20130309025732.000000+000`` (DMTF)."""
    text = text.strip()
    match = _DMTF_DATETIME.match(text)
    if match:
        try:
            base = dt.datetime.strptime(match.group(1), "%Y%m%d%H%M%S")
        except ValueError as exc:  # month 13, day 32: the right shape, no such moment
            raise ProtocolError(f"invalid CIM datetime {text!r}") from exc
        offset = int(match.group(4)) * (1 if match.group(3) == "+" else -1)
        tz = dt.timezone(dt.timedelta(minutes=offset))
        return base.replace(microsecond=int(match.group(2)), tzinfo=tz)
    try:
        iso = text[:-1] + "+00:00" if text.endswith("Z") else text
        # Python 3.10 fromisoformat takes 0, 3 or 6 fractional digits only.
        iso = re.sub(r"\.(\d+)", lambda m: "." + (m.group(1) + "000000")[:6], iso)
        return dt.datetime.fromisoformat(iso)
    except ValueError as exc:
        raise ProtocolError(f"invalid CIM datetime {text!r}") from exc


def parse_interval(text: str) -> dt.timedelta:
    """Parse ``P0DT0H1M40S`` (xs:duration) or ``00000000000140.000000:000`` (DMTF)."""
    text = text.strip()
    match = _DURATION.match(text)
    if match and text not in ("P", "PT"):
        return dt.timedelta(
            days=int(match.group("d") or 0),
            hours=int(match.group("h") or 0),
            minutes=int(match.group("m") or 0),
            seconds=float(match.group("s") or 0),
        )
    match = _DMTF_INTERVAL.match(text)
    if match:
        d, h, m, s, us = (int(g) for g in match.groups())
        return dt.timedelta(days=d, hours=h, minutes=m, seconds=s, microseconds=us)
    raise ProtocolError(f"invalid CIM interval {text!r}")


def is_nil(element: etree._Element) -> bool:
    nil = element.get(_XSI_NIL)
    return nil is not None and nil.strip().lower() in ("true", "1")


_XSI_TYPE = f"{{{ns.XSI}}}type"
_INT_TYPES = frozenset(
    [
        "cimUnsignedByte",
        "cimByte",
        "cimUnsignedShort",
        "cimShort",
        "cimUnsignedInt",
        "cimInt",
        "cimUnsignedLong",
        "cimLong",
    ]
)


_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def decode_value(element: etree._Element, *, fragment: bool = False) -> Scalar:
    """One property or parameter element to a Python value.

    Without a schema, scalars stay strings unless ``xsi:type`` names a CIM integer or boolean
    type; callers that know the schema (the job model) convert further. ``fragment``: the element
    is a property of a ``w:XmlFragment``, whose value wrappers are unqualified.
    """
    if is_nil(element):
        return None
    first = next(children(element), None) if len(element) else None  # most properties are leaves
    if first is not None:
        name, uri = local(first.tag), ns_of(first.tag)
        if uri == ns.CIM_COMMON or (fragment and not uri):
            if name == "Datetime":
                return CimDatetime(parse_datetime(text_of(first) or ""))
            if name == "Interval":
                return CimInterval(parse_interval(text_of(first) or ""))
        epr = decode_epr(element, fragment=fragment)
        if epr is not None:
            return epr
        # An embedded instance or unknown structure: keep its serialized XML.
        return etree.tostring(first, encoding="unicode")
    text = element.text or ""
    xsi_type = local_type(element.get(_XSI_TYPE))
    if xsi_type in _INT_TYPES:
        try:
            return int(text.strip())
        except ValueError as exc:
            raise ProtocolError(f"{local(element.tag)}: {text!r} is not an integer") from exc
    if xsi_type == "cimBoolean":
        # xs:boolean: true, false, 1, 0 (XML Schema 2, 3.2.2); anything else is not a boolean.
        flag = _BOOLEANS.get(text.strip().lower())
        if flag is None:
            raise ProtocolError(f"{local(element.tag)}: {text!r} is not a boolean")
        return flag
    return text


def local_type(value: str | None) -> str | None:
    if not value:
        return None
    return value.rsplit(":", 1)[-1]


def decode_epr(element: etree._Element, *, fragment: bool = False) -> EndpointReference | None:
    """An endpoint reference, with or without an ``a:EndpointReference`` wrapper; else None.

    ``fragment``: inside a ``w:XmlFragment``, unqualified EPR elements are read too.
    """
    a_ns = (ns.ADDRESSING, "") if fragment else (ns.ADDRESSING,)
    w_ns = (ns.WSMAN, "") if fragment else (ns.WSMAN,)
    wrapper = _child(element, a_ns, "EndpointReference")
    if wrapper is not None:
        element = wrapper
    params = _child(element, a_ns, "ReferenceParameters")
    if params is None:
        return None
    uri = text_of(_child(params, w_ns, "ResourceURI"))
    if not uri:
        raise ProtocolError("endpoint reference without a ResourceURI")
    selectors: dict[str, str] = {}
    selector_set = _child(params, w_ns, "SelectorSet")
    if selector_set is not None:
        for selector in selector_set:
            if local(selector.tag) == "Selector" and ns_of(selector.tag) in w_ns:
                name = selector.get("Name")
                if name:
                    selectors[name] = selector.text or ""
    address = text_of(_child(element, a_ns, "Address")) or ns.ANONYMOUS
    return EndpointReference(resource_uri=uri, selectors=selectors, address=address)


def _child(element: etree._Element, uris: tuple[str, ...], name: str) -> etree._Element | None:
    for child in element:
        if isinstance(child.tag, str) and local(child.tag) == name and ns_of(child.tag) in uris:
            return child
    return None
