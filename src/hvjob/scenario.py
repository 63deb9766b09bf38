"""The scenario fixture format: recorded WS-Man exchanges as human-readable YAML.

One file per scenario; the fake server replays them and the recorder writes them (docs/fixtures.md)::

    hvjob_fixture: 1
    description: KillJob on a running export job returns 0
    origin: hand-written (shapes follow real captures)   # or: recorded by hvjob X on DATE; ...
    exchanges:
      - request:
          action: http://.../Msvm_CollectionReferencePointExportJob/KillJob
          resource_uri: http://.../Msvm_CollectionReferencePointExportJob
          selectors: {InstanceID: "..."}
          body: |-                       # optional; compared semantically (prefixes and whitespace ignored)
            <p:KillJob_INPUT xmlns:p="...">...</p:KillJob_INPUT>
        response:
          status: 200
          body: |-
            <s:Envelope ...>...</s:Envelope>
        inject: {latency_ms: 100}       # optional fault injection (hvjob.testing)

Matching uses Action, ResourceURI, selectors and body, never MessageID. A fixture body matches
when every element and value it names is in the request (extra request elements, such as
MaxElements, are ignored; prefixes and whitespace never matter). Exchanges with the same match key
form an ordered sequence: the n-th matching request gets the n-th response, and the last repeats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

from hvjob.errors import ProtocolError, UsageError
from hvjob.wire import ns
from hvjob.wire.xmlsafe import local, ns_of, parse_xml, text_of

FORMAT_VERSION = 1

Canon = tuple[Any, ...]
MatchKey = tuple[str | None, str | None, tuple[tuple[str, str], ...]]


def canonical_element(element: etree._Element) -> Canon:
    """A prefix- and whitespace-independent form of an element, for semantic comparison."""
    attrs = tuple(sorted((str(k), str(v)) for k, v in element.attrib.items()))
    children = tuple(canonical_element(c) for c in element if isinstance(c.tag, str))
    text = "".join(str(t) for t in element.itertext()).strip() if not children else ""
    return (ns_of(element.tag), local(element.tag), attrs, text, children)


@dataclass(frozen=True)
class RequestPattern:
    """What a request must carry to match (from a fixture or from a live request)."""

    action: str | None
    resource_uri: str | None
    selectors: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None

    def key(self) -> MatchKey:
        return (self.action, self.resource_uri, tuple(sorted(self.selectors.items())))

    def body_canon(self) -> Canon | None:
        return canonical_element(parse_xml(self.body.encode("utf-8"))) if self.body else None


def body_matches(pattern: Canon, actual: Canon) -> bool:
    """True when ``actual`` contains everything ``pattern`` names (see the module docstring)."""
    p_ns, p_name, p_attrs, p_text, p_children = pattern
    a_ns, a_name, a_attrs, a_text, a_children = actual
    if (p_ns, p_name) != (a_ns, a_name) or not set(p_attrs) <= set(a_attrs):
        return False
    if not p_children:
        return p_text == a_text or (not p_text and not a_children)
    return all(any(body_matches(child, other) for other in a_children) for child in p_children)


@dataclass(frozen=True)
class Exchange:
    request: RequestPattern
    status: int
    body: str
    inject: Mapping[str, Any] = field(default_factory=dict)
    content_type: str = "application/soap+xml;charset=UTF-8"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    origin: str
    exchanges: list[Exchange]
    path: Path | None = None


def describe_request(envelope_xml: bytes) -> RequestPattern:
    """Read Action, ResourceURI, selectors and body from a request envelope (plaintext)."""
    root = parse_xml(envelope_xml)
    if local(root.tag) != "Envelope" or ns_of(root.tag) != ns.SOAP:
        raise ProtocolError("request is not a SOAP 1.2 envelope")
    action = resource_uri = None
    selectors: dict[str, str] = {}
    body_xml: str | None = None
    for part in root:
        if not isinstance(part.tag, str):
            continue
        if local(part.tag) == "Header":
            for item in part:
                name = local(item.tag)
                if name == "Action":
                    action = text_of(item)
                elif name == "ResourceURI":
                    resource_uri = text_of(item)
                elif name == "SelectorSet":
                    for selector in item:
                        if local(selector.tag) == "Selector" and selector.get("Name"):
                            selectors[str(selector.get("Name"))] = selector.text or ""
        elif local(part.tag) == "Body":
            first = next((c for c in part if isinstance(c.tag, str)), None)
            if first is not None:
                if local(first.tag) == "Identify" and ns_of(first.tag) == ns.WSMAN_IDENTITY:
                    action = action or "Identify"
                body_xml = etree.tostring(first, encoding="unicode")
    return RequestPattern(action, resource_uri, selectors, body_xml)


#: libyaml's safe loader when PyYAML was built with it (ten times faster: every fake server loads
#: its scenarios), else the pure-Python one; both build plain data only.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_scenario(path: Path) -> Scenario:
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)  # noqa: S506 (a safe loader)
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read fixture {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("hvjob_fixture") != FORMAT_VERSION:
        raise UsageError(f"{path}: not an hvjob fixture (needs 'hvjob_fixture: {FORMAT_VERSION}')")
    exchanges = []
    for index, item in enumerate(doc.get("exchanges") or []):
        try:
            req = item["request"]
            resp = item["response"]
            exchanges.append(
                Exchange(
                    RequestPattern(
                        req.get("action"),
                        req.get("resource_uri"),
                        {str(k): str(v) for k, v in (req.get("selectors") or {}).items()},
                        req.get("body"),
                    ),
                    int(resp.get("status", 200)),
                    str(resp.get("body") or ""),
                    dict(item.get("inject") or {}),
                    str(resp.get("content_type") or "application/soap+xml;charset=UTF-8"),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UsageError(f"{path}: exchange {index} is malformed ({exc})") from exc
    return Scenario(
        name=path.stem,
        description=str(doc.get("description") or ""),
        origin=str(doc.get("origin") or "unknown"),
        exchanges=exchanges,
        path=path,
    )


def load_scenarios(directory: Path) -> list[Scenario]:
    if not directory.is_dir():
        raise UsageError(f"fixture directory {directory} does not exist")
    return [load_scenario(p) for p in sorted(directory.glob("*.yml"))]


class _LiteralDumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data or len(data) > 100 else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_LiteralDumper.add_representer(str, _str_presenter)


def dump_scenario(
    description: str,
    origin: str,
    exchanges: list[dict[str, Any]],
    *,
    recorded: Mapping[str, Any] | None = None,
) -> str:
    """Serialise a scenario with XML in literal blocks, so a reviewer can read the SOAP.

    ``recorded``: what a recording knows of its making (hvjob version, date, the target's Identify
    answer), written after ``origin``; loading ignores it, so files without it load the same.
    """
    doc: dict[str, Any] = {"hvjob_fixture": FORMAT_VERSION, "description": description, "origin": origin}
    if recorded is not None:
        doc["recorded"] = dict(recorded)
    doc["exchanges"] = exchanges
    text: str = yaml.dump(doc, Dumper=_LiteralDumper, sort_keys=False, allow_unicode=True, width=100)
    return text
