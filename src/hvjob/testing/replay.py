"""Scenario replay: a backend that answers requests from recorded or hand-written fixtures.

Matching (docs/fixtures.md) uses Action, ResourceURI, selectors and body, never MessageID; the WMI
path of an Action or ResourceURI (namespace and class) is compared case-insensitively, as Windows
does. Exchanges with the same match key form an ordered sequence. A reply is re-addressed to the
request: ``RelatesTo`` is the request's MessageID and its own MessageID is fresh.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from hvjob.errors import HvjobError
from hvjob.scenario import Canon, Exchange, MatchKey, RequestPattern, Scenario, body_matches, describe_request
from hvjob.testing.front import ControlReply, FrontRequest, Reply, identify_reply, readdress, request_message_id
from hvjob.wire import ns

NOT_FOUND_FAULT = (
    '<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '
    'xmlns:e="http://schemas.xmlsoap.org/ws/2004/08/eventing" '
    'xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
    "<s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action>"
    "<a:MessageID>uuid:00000000-0000-0000-0000-000000000000</a:MessageID>"
    "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
    "<a:RelatesTo>uuid:00000000-0000-0000-0000-000000000000</a:RelatesTo></s:Header>"
    "<s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:InvalidSelectors</s:Value>"
    '</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot process the '
    "request because the request contained invalid selectors for the resource. </s:Text></s:Reason>"
    '<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" '
    'Code="2150858752" Machine="{machine}"><f:Message>The WS-Management service cannot process the request. '
    "The service cannot find the resource identified by the resource URI and selectors. </f:Message>"
    "</f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"
)


def _fold_wmi_path(uri: str | None) -> str | None:
    """``.../wmi/root/HyperVCluster/v2/Class[/Method]`` with namespace and class folded to lower case."""
    if uri is None or not uri.lower().startswith(ns.WMI_URI_PREFIX):
        return uri
    return ns.WMI_URI_PREFIX + uri[len(ns.WMI_URI_PREFIX) :].lower()


def _fold_key(key: MatchKey) -> MatchKey:
    action, resource_uri, selectors = key
    return (_fold_wmi_path(action), _fold_wmi_path(resource_uri), selectors)


class ScenarioReplay:
    """Answer requests from ``scenarios``; ``fault_plan`` may draw an injection for each request."""

    def __init__(
        self,
        scenarios: Iterable[Scenario],
        *,
        fault_plan: Callable[[RequestPattern], dict[str, Any]] | None = None,
    ) -> None:
        self.scenarios = list(scenarios)
        self.fault_plan = fault_plan
        self._lock = threading.Lock()
        # match key -> groups of (fixture body or None, its exchanges in file order)
        self._table: dict[MatchKey, list[tuple[Canon | None, list[Exchange]]]] = {}
        self._counters: dict[tuple[MatchKey, int], int] = defaultdict(int)
        self._next_injections: list[dict[str, Any]] = []
        self._index()

    def _index(self) -> None:
        owners: dict[tuple[MatchKey, Canon | None], str] = {}
        for scenario in self.scenarios:
            for exchange in scenario.exchanges:
                key, body = _fold_key(exchange.request.key()), exchange.request.body_canon()
                owner = owners.setdefault((key, body), scenario.name)
                if owner != scenario.name:
                    raise HvjobError(f"fixtures {owner} and {scenario.name} both answer the same request")
                groups = self._table.setdefault(key, [])
                for group_body, exchanges in groups:
                    if group_body == body:
                        exchanges.append(exchange)
                        break
                else:
                    groups.append((body, [exchange]))
                # Specific bodies are tried before body-less catch-alls.
                groups.sort(key=lambda group: group[0] is None)

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()

    def inject_next(self, **injection: Any) -> None:
        with self._lock:
            self._next_injections.append(injection)

    def pop_injection(self) -> dict[str, Any]:
        with self._lock:
            return self._next_injections.pop(0) if self._next_injections else {}

    def match(self, pattern: RequestPattern, unmatched: list[Any] | None = None) -> Exchange | None:
        key = _fold_key(pattern.key())
        actual = pattern.body_canon()
        with self._lock:
            for number, (body, sequence) in enumerate(self._table.get(key, [])):
                if body is not None and (actual is None or not body_matches(body, actual)):
                    continue
                index = self._counters[(key, number)]
                self._counters[(key, number)] = index + 1
                return sequence[min(index, len(sequence) - 1)]
            if unmatched is not None:
                unmatched.append(pattern)
            return None

    def answer(self, request: FrontRequest) -> Reply:
        message_id = request_message_id(request.plaintext)
        try:
            pattern = describe_request(request.plaintext)
        except HvjobError:
            return Reply(400, b"", relates_to=message_id)
        injection = dict(self.pop_injection())
        if not injection and self.fault_plan is not None:
            injection = self.fault_plan(pattern)
        if pattern.action == "Identify":  # authenticated Identify: answered like any reply (encrypted too)
            return Reply(200, identify_reply(authenticated=True), inject=injection, relates_to=message_id)
        exchange = self.match(pattern, request.stats.unmatched)
        if exchange is None:
            text = readdress(NOT_FOUND_FAULT.format(machine=request.machine), message_id)
            return Reply(500, text, inject=injection, relates_to=message_id)
        with self._lock:
            request.stats.served.append((pattern.action, dict(pattern.selectors)))
            if pattern.action and not pattern.action.startswith("http://schemas.xmlsoap.org/"):
                request.stats.invokes += 1
        text = readdress(exchange.body, message_id)
        return Reply(
            exchange.status,
            text,
            exchange.content_type,
            inject={**exchange.inject, **injection},
            relates_to=message_id,
        )

    def control(self, method: str, path: str, body: bytes) -> ControlReply | None:
        return None  # replay has no ground truth to show
