"""The simulator's WS-Man layer: parse a request, dispatch it to the model or a provider, render.

One :class:`NodeBackend` per node sits behind that node's front (:mod:`hvjob.testing.front`). It
reads the envelope with :mod:`hvjob.wire`, answers Get, Enumerate / Pull / Release (WQL or a class
URI, optimized or not) and method Invokes, and renders replies and faults with lxml
(:mod:`hvjob.testing.sim.render`, :mod:`hvjob.testing.sim.faults`). Faults injected through the
control API are applied here, around the provider: before it runs (``drop_before_execute``,
``fault``) or after (``drop_after_execute``, ``timeout``, and the injection vocabulary of
docs/fixtures.md); ``restart`` takes the node's listener away, before or after (``execute``). The
method log says what became of each answer, the fault log which request each fault spoiled.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

from hvjob.errors import ProtocolError
from hvjob.testing.front import ControlReply, FrontRequest, Reply, identify_reply
from hvjob.testing.sim import faults, render, wql
from hvjob.testing.sim.model import (
    JOB_CLASSES,
    MSCLUSTER_NAMESPACE,
    NAMESPACE_CLASSES,
    SERVICE_CLASS,
    SERVICE_KEYS,
    ClusterModel,
    Enumeration,
    FaultRule,
    SimJob,
    canonical_class,
    canonical_namespace,
    cluster_properties,
    is_a,
    job_properties,
    node_properties,
    service_properties,
)
from hvjob.testing.sim.providers import MUTATING, CimFault, Embedded, MethodCall, Reference, method_provider
from hvjob.wire import ns
from hvjob.wire.build import new_message_id
from hvjob.wire.cim import CimDatetime, CimInterval, EndpointReference, decode_value, parse_interval
from hvjob.wire.parse import read_envelope
from hvjob.wire.schema import CLASSES, PropertyType, property_types, typed_value
from hvjob.wire.xmlsafe import children, local, ns_of, text_of

DEFAULT_OPERATION_TIMEOUT = 60.0  # Windows' MaxTimeoutms default
ENUMERATION_TIMEOUT = 240.0  # Windows' EnumerationTimeoutms default (real seconds: a service timeout)
MAX_ENUMERATIONS = 4096
_INT_TYPES = frozenset({"uint8", "sint8", "uint16", "sint16", "uint32", "sint32", "uint64", "sint64"})
_RANGES = {"uint8": (0, 255), "uint16": (0, 65535), "uint32": (0, 2**32 - 1)}

#: Kinds of injected fault (``POST /_hvjob/faults``) besides the injection vocabulary's keys.
FAULT_KINDS = ("drop_after_execute", "drop_before_execute", "timeout", "fault", "restart")
INJECTION_KINDS = (
    "latency_ms",
    "close",
    "status",
    "body",
    "raw_body",
    "reply",
    "content_type",
    "headers",
    "relates_to",
    "action",
    "corrupt",
)
_DELIVERED = frozenset({"latency_ms", "headers"})  # injections that leave the answer intact


@dataclass
class ParsedRequest:
    action: str
    message_id: str | None
    resource_uri: str
    selectors: dict[str, str]
    operation_timeout: float
    body: etree._Element | None
    user: str | None


@dataclass
class Resource:
    namespace: str | None  # canonical; None when not simulated
    class_name: str | None  # canonical; "*" for a namespace URI; None when unknown
    given_namespace: str
    given_class: str


@dataclass
class Outcome:
    reply: Reply
    operation: str
    target: str


class NodeBackend:
    """The WS-Man service of one simulated node."""

    def __init__(
        self,
        model: ClusterModel,
        node: str,
        *,
        control: Callable[[str, str, bytes], ControlReply | None] | None = None,
        on_request: Callable[[dict[str, Any]], None] | None = None,
        restart: Callable[[str, float], None] | None = None,
    ) -> None:
        self.model = model
        self.node = node
        self._control = control
        self.on_request = on_request
        self._restart = restart  # (node, seconds): its listener goes away now and is back after that long

    def control(self, method: str, path: str, body: bytes) -> ControlReply | None:
        answer = self._control(method, path, body) if self._control is not None else None
        if answer is not None and self.on_request is not None:
            self.on_request({"node": self.node, "operation": method, "target": path, "answer": str(answer.status)})
        return answer

    # --- dispatch ------------------------------------------------------------------------------

    def answer(self, request: FrontRequest) -> Reply:
        try:
            envelope = read_envelope(request.plaintext)
        except ProtocolError:
            return Reply(400, b"")
        body = envelope.body
        if body is not None and local(body.tag) == "Identify" and ns_of(body.tag) == ns.WSMAN_IDENTITY:
            return Reply(200, identify_reply(authenticated=True))
        parsed = _parse(envelope, request.user)
        with self.model.lock:
            outcome = self._dispatch(parsed)
        if self.on_request is not None:
            self.on_request(_request_line(self.node, outcome))
        return outcome.reply

    def _dispatch(self, request: ParsedRequest) -> Outcome:
        machine, mid = self.node, request.message_id
        action = request.action
        resource = _resource(request.resource_uri, request.selectors)
        if action == ns.ACTION_GET:
            return self._get(request, resource)
        if action == ns.ACTION_ENUMERATE:
            return self._enumerate(request, resource)
        if action in (ns.ACTION_PULL, ns.ACTION_RELEASE):
            return self._pull(request, release=action == ns.ACTION_RELEASE)
        prefix = request.resource_uri.rstrip("/") + "/"
        if request.resource_uri and action.lower().startswith(prefix.lower()):
            return self._invoke(request, resource, action[len(prefix) :])
        fault = faults.action_not_supported(machine, mid)
        return Outcome(Reply(fault.status, fault.body, relates_to=mid), action.rsplit("/", 1)[-1], request.resource_uri)

    def _fault(self, fault: faults.Fault, request: ParsedRequest, operation: str, target: str) -> Outcome:
        return Outcome(Reply(fault.status, fault.body, relates_to=request.message_id), operation, target)

    def _check_resource(self, request: ParsedRequest, resource: Resource, operation: str) -> faults.Fault | None:
        wmi_operation = {"Get": "GetObject", "Invoke": "ExecMethod"}.get(operation, operation)
        path = f"{resource.given_class}"
        if resource.namespace is None:
            return faults.unknown_resource(
                self.node, request.message_id, wmi_operation, path, faults.WBEM_E_INVALID_NAMESPACE
            )
        if resource.class_name is None or (
            resource.class_name != "*" and resource.class_name not in NAMESPACE_CLASSES[resource.namespace]
        ):
            return faults.unknown_resource(
                self.node, request.message_id, wmi_operation, path, faults.WBEM_E_INVALID_CLASS
            )
        return None

    # --- Get -----------------------------------------------------------------------------------

    def _get(self, request: ParsedRequest, resource: Resource) -> Outcome:
        target = _target(resource, request.selectors)
        rule = self._rule("Get", request)
        if rule is not None and _before_execute(rule):
            return self._before(rule, request, "Get", target, "GetObject")
        problem = self._check_resource(request, resource, "Get")
        if problem is None and resource.class_name == "*":
            problem = faults.invalid_selectors(self.node, request.message_id, "InvalidResourceURI")
        if problem is not None:
            return self._after(rule, self._fault(problem, request, "Get", target), request, [])
        assert resource.class_name is not None
        assert resource.namespace is not None
        found = self._instance(request, resource, "GetObject")
        if isinstance(found, faults.Fault):
            return self._after(rule, self._fault(found, request, "Get", target), request, [])
        class_name, namespace, properties = found
        text = render.get_response(request.message_id, class_name, namespace, properties, self.model.profile)
        return self._after(rule, Outcome(Reply(200, text, relates_to=request.message_id), "Get", target), request, [])

    def _instance(
        self, request: ParsedRequest, resource: Resource, operation: str
    ) -> tuple[str, str, dict[str, Any]] | faults.Fault:
        """The instance the selectors name, as (class, namespace, properties), or the fault."""
        assert resource.class_name is not None
        assert resource.namespace is not None
        class_name, namespace = resource.class_name, resource.namespace
        selectors = {k.lower(): v for k, v in request.selectors.items() if k.lower() != "__cimnamespace"}
        path = _path(class_name, request.selectors)
        mid, model = request.message_id, self.model
        if class_name == SERVICE_CLASS:
            keys = {k.lower(): k for k in SERVICE_KEYS}
            properties = service_properties(model, self.node)
            if not selectors or any(k not in keys for k in selectors):
                return faults.invalid_selectors(self.node, mid)
            if any(str(properties[keys[k]]).lower() != v.lower() for k, v in selectors.items()):
                return faults.not_found(self.node, mid, operation, path, "WinMgmt")
            return class_name, namespace, properties
        if class_name in ("MSCluster_Cluster", "MSCluster_Node"):
            if set(selectors) != {"name"}:
                return faults.invalid_selectors(self.node, mid)
            name = selectors["name"]
            if class_name == "MSCluster_Cluster" and name.lower() == model.name.lower():
                return class_name, namespace, cluster_properties(model)
            node = model.node_name(name) if class_name == "MSCluster_Node" else None
            if node is not None:
                return class_name, namespace, node_properties(model, node)
            return faults.not_found(self.node, mid, operation, path, "MSCluster")
        if set(selectors) != {"instanceid"}:
            return faults.invalid_selectors(self.node, mid)
        job = self._job(selectors["instanceid"], class_name, namespace)
        if job is None:
            return faults.not_found(self.node, mid, operation, path)
        return job.class_name, job.namespace, job_properties(model, job, model.clock.now())

    def _job(self, job_id: str, class_name: str, namespace: str) -> SimJob | None:
        model = self.model
        job = model.find(job_id)
        if job is None:
            return None
        model.settle_job(job, model.clock.now())
        if job.namespace != namespace or not is_a(job.class_name, class_name) or not model.visible_on(job, self.node):
            return None
        return job

    # --- Invoke --------------------------------------------------------------------------------

    def _invoke(self, request: ParsedRequest, resource: Resource, method_name: str) -> Outcome:
        mid, model = request.message_id, self.model
        target = f"{method_name} {_target(resource, request.selectors)}"
        rule = self._rule(method_name, request)
        if rule is not None and _before_execute(rule):
            return self._before(rule, request, "Invoke", target, "ExecMethod")
        problem = self._check_resource(request, resource, "Invoke")
        if problem is not None:
            return self._after(rule, self._fault(problem, request, "Invoke", target), request, [])
        assert resource.class_name is not None
        assert resource.namespace is not None
        found = method_provider(resource.class_name, method_name)
        if found is None:
            problem = faults.wmi_error(
                self.node, mid, faults.WBEM_E_INVALID_METHOD, "Invalid method ", "ExecMethod", resource.class_name
            )
            return self._after(rule, self._fault(problem, request, "Invoke", target), request, [])
        method, provider = found
        instance = self._instance(request, resource, "ExecMethod")
        if isinstance(instance, faults.Fault):
            return self._after(rule, self._fault(instance, request, "Invoke", target), request, [])
        params = _parameters(request.body, method, provider.parameters)
        if isinstance(params, str):
            problem = faults.invalid_parameter(self.node, mid, params)
            return self._after(rule, self._fault(problem, request, "Invoke", target), request, [])
        now = model.clock.now()
        job = None
        if resource.class_name in _JOB_LIKE:
            job_id = next((v for k, v in request.selectors.items() if k.lower() == "instanceid"), "")
            job = model.find(job_id)
        call = MethodCall(
            model, self.node, instance[0], instance[1], method, job, dict(request.selectors), params, now, request.user
        )
        resource_uri = ns.wmi_resource_uri(instance[1], resource.class_name)
        try:
            result = provider.invoke(call)
        except CimFault as exc:
            entry = model.record(
                node=self.node,
                method=method,
                class_name=instance[0],
                namespace=instance[1],
                job=job.id if job else None,
                parameters=_jsonable(params),
                return_value=None,
                out={},
                effect=None,
                fault=exc.kind,
                message_id=mid,
                user=request.user,
            )
            code = faults.WBEM_E_NOT_SUPPORTED if exc.kind == "not_supported" else faults.WBEM_E_FAILED
            problem = faults.wmi_error(
                self.node, mid, code, exc.message, "ExecMethod", _path(instance[0], request.selectors)
            )
            return self._after(rule, self._fault(problem, request, "Invoke", target), request, [entry])
        entry = model.record(
            node=self.node,
            method=method,
            class_name=instance[0],
            namespace=instance[1],
            job=job.id if job else None,
            parameters=_jsonable(params),
            return_value=result.return_value,
            out=_jsonable(result.out),
            effect=result.effect,
            fault=None,
            message_id=mid,
            user=request.user,
        )
        text = render.method_response(mid, resource_uri, method, result.return_value, result.out, model.profile)
        outcome = Outcome(Reply(200, text, relates_to=mid), "Invoke", f"{target} -> ReturnValue {result.return_value}")
        return self._after(rule, outcome, request, [entry])

    # --- Enumerate, Pull, Release ----------------------------------------------------------------

    def _enumerate(self, request: ParsedRequest, resource: Resource) -> Outcome:
        mid, model = request.message_id, self.model
        target = _target(resource, {})
        rule = self._rule("Enumerate", request)
        if rule is not None and _before_execute(rule):
            return self._before(rule, request, "Enumerate", target, "ExecQuery")
        options = _enumerate_options(request.body)
        problem = self._check_resource(request, resource, "Enumerate")
        query = None
        if problem is None and options.wql is not None and resource.class_name != "*":
            problem = faults.wql_on_class_uri(self.node, mid)
        elif problem is None and options.dialect is not None and options.dialect != ns.DIALECT_WQL:
            problem = faults.cannot_process_filter(self.node, mid, options.wql or "", "Invalid query ")
        elif problem is None and resource.class_name == "*":
            if options.wql is None:
                problem = faults.cannot_process_filter(self.node, mid, "", "Invalid query ")
            else:
                assert resource.namespace is not None
                try:
                    query = wql.parse(options.wql, lambda name: _table(resource.namespace or "", name))
                except LookupError:
                    problem = faults.cannot_process_filter(
                        self.node, mid, options.wql, "The specified class does not exist in the given namespace. "
                    )
                except wql.WqlError:
                    problem = faults.cannot_process_filter(self.node, mid, options.wql, "Invalid query ")
                target = f"{target} {options.wql}"
        if problem is not None:
            return self._after(rule, self._fault(problem, request, "Enumerate", target), request, [])
        assert resource.namespace is not None
        class_name = canonical_class(query.class_name) if query is not None else resource.class_name
        assert class_name is not None
        items = [
            item for item in self._instances(resource.namespace, class_name) if query is None or query.matches(item[2])
        ]
        fragment = query.properties if query is not None else None
        first: list[tuple[str, str, dict[str, Any]]] = []
        if options.optimize:
            first, items = items[: options.max_elements], items[options.max_elements :]
        context = None
        if items or not options.optimize:
            context = self._store(Enumeration(self.node, items, fragment, time.monotonic() + ENUMERATION_TIMEOUT))
        text = render.enumeration_response(
            mid,
            pull=False,
            context=context,
            items=first,
            fragment=fragment,
            end=options.optimize and context is None,
            optimized=options.optimize,
            profile=model.profile,
        )
        outcome = Outcome(Reply(200, text, relates_to=mid), "Enumerate", f"{target} -> {len(first)} items")
        return self._after(rule, outcome, request, [])

    def _instances(self, namespace: str, class_name: str) -> list[tuple[str, str, dict[str, Any]]]:
        model = self.model
        now = model.clock.now()
        if namespace == MSCLUSTER_NAMESPACE:
            if class_name == "MSCluster_Cluster":
                return [(class_name, namespace, cluster_properties(model))]
            return [(class_name, namespace, node_properties(model, n)) for n in model.nodes]
        if class_name == SERVICE_CLASS:
            return [(SERVICE_CLASS, namespace, service_properties(model, self.node))]
        found = []
        for job in model.jobs_on(self.node, namespace):
            model.settle_job(job, now)
            if not job.removed and is_a(job.class_name, class_name):
                found.append((job.class_name, namespace, job_properties(model, job, now)))
        return found

    def _store(self, enumeration: Enumeration) -> str:
        store = self.model.enumerations
        now = time.monotonic()
        for key in [k for k, e in store.items() if e.expires < now]:
            del store[key]
        while len(store) >= MAX_ENUMERATIONS:
            del store[next(iter(store))]
        context = new_message_id()
        store[context] = enumeration
        return context

    def _pull(self, request: ParsedRequest, *, release: bool) -> Outcome:
        mid = request.message_id
        operation = "Release" if release else "Pull"
        rule = self._rule(operation, request)
        if rule is not None and _before_execute(rule):
            return self._before(rule, request, operation, request.resource_uri, "ExecQuery")
        context, max_elements = _pull_options(request.body)
        enumeration = self.model.enumerations.pop(context, None) if context else None
        if enumeration is not None and (enumeration.node != self.node or enumeration.expires < time.monotonic()):
            enumeration = None
        if enumeration is None:
            problem = faults.invalid_enumeration_context(self.node, mid)
            return self._after(rule, self._fault(problem, request, operation, request.resource_uri), request, [])
        if release:
            outcome = Outcome(Reply(200, render.release_response(mid), relates_to=mid), operation, request.resource_uri)
            return self._after(rule, outcome, request, [])
        batch, enumeration.items = enumeration.items[:max_elements], enumeration.items[max_elements:]
        next_context = self._store(enumeration) if enumeration.items else None
        text = render.enumeration_response(
            mid,
            pull=True,
            context=next_context,
            items=batch,
            fragment=enumeration.fragment,
            end=next_context is None,
            optimized=False,
            profile=self.model.profile,
        )
        return self._after(
            rule, Outcome(Reply(200, text, relates_to=mid), operation, f"{len(batch)} items"), request, []
        )

    # --- injected faults -------------------------------------------------------------------------

    def _rule(self, method: str, request: ParsedRequest) -> FaultRule | None:
        if not self.model.faults:
            return None
        job = next((v for k, v in request.selectors.items() if k.lower() == "instanceid"), None)
        return self.model.take_fault(self.node, method, job, request.message_id)

    def _restart_listener(self, rule: FaultRule) -> None:
        """A ``restart`` fault: the node's listener goes away (this connection with it) for ``seconds``."""
        if self._restart is not None:
            self._restart(self.node, float(rule.fields.get("seconds", 1.0)))

    def _before(self, rule: FaultRule, request: ParsedRequest, operation: str, target: str, wmi: str) -> Outcome:
        """A fault that answers instead of the service: the method is not run."""
        mid = request.message_id
        if rule.kind in ("drop_before_execute", "restart"):
            if rule.kind == "restart":
                self._restart_listener(rule)
            return Outcome(
                Reply(200, b"", inject={"close": "before_response"}, relates_to=mid), operation, target + " (dropped)"
            )
        fault = faults.injected(str(rule.fields.get("fault", "generic_failure")), self.node, mid, wmi, target)
        return Outcome(Reply(fault.status, fault.body, relates_to=mid), operation, target + " (injected fault)")

    def _after(self, rule: FaultRule | None, outcome: Outcome, request: ParsedRequest, entries: list[Any]) -> Outcome:
        """A fault that spoils the answer of what ran; the log says what became of the answer."""
        if rule is None:
            return outcome
        mid = request.message_id
        if rule.kind in ("drop_after_execute", "restart"):
            if rule.kind == "restart":
                self._restart_listener(rule)
            outcome.reply = Reply(200, b"", inject={"close": "before_response"}, relates_to=mid)
            answer = "dropped"
        elif rule.kind == "timeout":
            seconds = float(rule.fields.get("seconds", request.operation_timeout + 1))
            if seconds <= request.operation_timeout:
                return outcome
            fault = faults.timed_out(self.node, mid)
            outcome.reply = Reply(fault.status, fault.body, relates_to=mid)
            answer = "timed_out"
        else:
            injection = {k: v for k, v in rule.fields.items() if k in INJECTION_KINDS}
            outcome.reply.inject = {**outcome.reply.inject, **injection}
            closes = injection.get("close") in ("before_response", "mid_response", "reset")
            answer = "dropped" if closes else "sent" if set(injection) <= _DELIVERED | {"close"} else "altered"
        outcome.target += f" ({rule.kind})"
        for entry in entries:
            entry.answer = answer
        return outcome


_JOB_LIKE = frozenset({*JOB_CLASSES, "CIM_ConcreteJob", "CIM_Job"})


def _before_execute(rule: FaultRule) -> bool:
    """Whether ``rule`` answers instead of the service (nothing runs) rather than spoiling its answer."""
    return rule.kind in ("drop_before_execute", "fault") or (rule.kind == "restart" and not rule.fields.get("execute"))


@dataclass
class _EnumerateOptions:
    optimize: bool = False
    max_elements: int = 1
    wql: str | None = None
    dialect: str | None = None


def _enumerate_options(body: etree._Element | None) -> _EnumerateOptions:
    options = _EnumerateOptions()
    if body is None:
        return options
    for child in children(body):
        name = local(child.tag)
        if name == "OptimizeEnumeration":
            options.optimize = True
        elif name == "MaxElements":
            try:
                options.max_elements = max(1, int(text_of(child) or "1"))
            except ValueError:
                options.max_elements = 1
        elif name == "Filter":
            options.dialect = child.get("Dialect")
            options.wql = text_of(child) or ""
    return options


def _pull_options(body: etree._Element | None) -> tuple[str | None, int]:
    context, max_elements = None, 1
    if body is not None:
        for child in children(body):
            if local(child.tag) == "EnumerationContext":
                context = text_of(child)
            elif local(child.tag) == "MaxElements":
                try:
                    max_elements = max(1, int(text_of(child) or "1"))
                except ValueError:
                    max_elements = 1
    return context, max_elements


def _parse(envelope: Any, user: str | None) -> ParsedRequest:
    resource_uri, selectors, timeout = "", {}, DEFAULT_OPERATION_TIMEOUT
    header = next((c for c in children(envelope.root) if local(c.tag) == "Header"), None)
    if header is not None:
        for item in children(header):
            name = local(item.tag)
            if name == "ResourceURI":
                resource_uri = text_of(item) or ""
            elif name == "SelectorSet":
                for selector in children(item):
                    if local(selector.tag) == "Selector" and selector.get("Name"):
                        selectors[str(selector.get("Name"))] = text_of(selector) or ""
            elif name == "OperationTimeout":
                try:
                    timeout = parse_interval(text_of(item) or "").total_seconds()
                except ProtocolError:
                    timeout = DEFAULT_OPERATION_TIMEOUT
    return ParsedRequest(
        envelope.action or "", envelope.message_id, resource_uri, selectors, timeout, envelope.body, user
    )


def _resource(uri: str, selectors: Mapping[str, str]) -> Resource:
    lowered = uri.lower()
    if lowered.startswith(ns.WMI_URI_PREFIX):
        path = uri[len(ns.WMI_URI_PREFIX) :].strip("/")
        namespace, _, class_name = path.rpartition("/")
    elif lowered.startswith(ns.CIM_SCHEMA_PREFIX):
        class_name = uri[len(ns.CIM_SCHEMA_PREFIX) :].strip("/")
        namespace = next((v for k, v in selectors.items() if k.lower() == "__cimnamespace"), "root/cimv2")
    else:
        return Resource(None, None, "", uri)
    canonical = "*" if class_name == "*" else canonical_class(class_name)
    return Resource(canonical_namespace(namespace), canonical, namespace, class_name)


def _table(namespace: str, class_name: str) -> Mapping[str, PropertyType] | None:
    canonical = canonical_class(class_name)
    if canonical is None or canonical not in NAMESPACE_CLASSES.get(namespace, ()):
        return None
    return CLASSES.get(canonical) or property_types(canonical)


def _target(resource: Resource, selectors: Mapping[str, str]) -> str:
    keys = ",".join(f"{k}={v}" for k, v in selectors.items() if k.lower() != "__cimnamespace")
    name = resource.class_name or resource.given_class
    return f"{name}[{keys}]" if keys else name


def _path(class_name: str, selectors: Mapping[str, str]) -> str:
    keys = ",".join(f'{k}="{v}"' for k, v in selectors.items() if k.lower() != "__cimnamespace")
    return f"{class_name}.{keys}" if keys else class_name


def _parameters(body: etree._Element | None, method: str, declared: Mapping[str, str]) -> dict[str, Any] | str:
    """The method's typed in-parameters, or the message of WMI's refusal (unknown name, wrong type)."""
    params: dict[str, Any] = {}
    if body is None:
        return params
    if local(body.tag).lower() != f"{method}_INPUT".lower():
        return f"The method input element is {local(body.tag)}, not {method}_INPUT. "
    for child in children(body):
        name = local(child.tag)
        cim_type = declared.get(name)
        if cim_type is None:
            return f"The parameter {name} is not a parameter of {method}. "
        value = decode_value(child)
        typed = _typed(value, cim_type)
        if typed is _INVALID:
            return f"The value of {name} is not a valid {cim_type}. "
        params[name] = typed
    return params


_INVALID = object()


def _typed(value: Any, cim_type: str) -> Any:
    if value is None:
        return None
    if cim_type == "reference":
        return value if isinstance(value, EndpointReference) else _INVALID
    if cim_type == "string":
        return value if isinstance(value, str) else _INVALID
    converted = typed_value(value, PropertyType(cim_type))
    if cim_type in _INT_TYPES:
        if isinstance(converted, bool) or not isinstance(converted, int):
            return _INVALID
        low, high = _RANGES.get(cim_type, (-(2**63), 2**64 - 1))
        return converted if low <= converted <= high else _INVALID
    if cim_type == "boolean":
        return converted if isinstance(converted, bool) else _INVALID
    if cim_type == "datetime":
        if isinstance(converted, CimInterval):
            return converted.value
        if isinstance(converted, CimDatetime):
            return converted.value
        return _INVALID
    return converted


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Reference):
        return {"class": value.class_name, "namespace": value.namespace, "InstanceID": value.instance_id}
    if isinstance(value, Embedded):
        return {"class": value.class_name, **_jsonable(dict(value.properties))}
    if isinstance(value, EndpointReference):
        return {"resource_uri": value.resource_uri, "selectors": dict(value.selectors)}
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _request_line(node: str, outcome: Outcome) -> dict[str, Any]:
    reply = outcome.reply
    body = reply.body if isinstance(reply.body, str) else ""
    answer = str(reply.status)
    if reply.status >= 400 and "<s:Subcode>" in body:
        start = body.find("<s:Value>", body.find("<s:Subcode>")) + len("<s:Value>")
        answer += " " + body[start : body.find("<", start)]
    if reply.inject:
        answer += " " + ",".join(f"{k}={v}" for k, v in reply.inject.items() if k != "reply")
    return {"node": node, "operation": outcome.operation, "target": outcome.target, "answer": answer}


__all__ = ["FAULT_KINDS", "INJECTION_KINDS", "MUTATING", "NodeBackend"]
