"""The control API every simulated node serves under ``/_hvjob/`` (JSON; unauthenticated; loopback only).

===============================  ============================================================
``GET /_hvjob/cluster``          name, nodes and their URLs, the profile, the simulated time
``GET /_hvjob/jobs``             every job: ``id``, ``node``, ``class``, ``namespace``, ``state``
                                 (its JobState name), ``job_state``, ``percent``, ``removed``...
                                 (``?node=NODE``: the jobs of that node)
``GET /_hvjob/jobs/ID``          one job
``POST /_hvjob/jobs``            add a job (the cluster file's job fields)
``GET /_hvjob/log``              every method the providers executed, in order
``GET|POST /_hvjob/clock``       the time; ``{"advance": SECONDS}`` and/or ``{"speed": X}``
``GET|POST /_hvjob/faults``      pending faults; add ``{"node", "method", "kind", "count", ...}``
                                 (``"skip": N``: the first N matching requests pass)
``DELETE /_hvjob/faults``        drop the pending faults (``?node=NODE``: those naming that node)
``GET /_hvjob/faults/log``       every use of a fault, in order, with the request's MessageID
``GET /_hvjob/nodes``            each node's URL, whether it is listening, its open connections
``POST /_hvjob/nodes/NODE``      ``{"listening": false}`` (gone: connections closed, new ones
                                 refused), ``{"listening": true}``, ``{"restart": SECONDS}``,
                                 ``{"close_connections": true}`` (an idle close, now)
``POST /_hvjob/profile``         change switches: ``{"killjob": "returns-1", ...}``
``POST /_hvjob/reset``           back to the cluster's initial jobs, profile and time
===============================  ============================================================

A request that takes a node's listener away is best sent to another node's: its own connection goes too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import parse_qs

from hvjob.errors import UsageError
from hvjob.testing.front import CONTROL_PREFIX, ControlReply
from hvjob.testing.sim import faults
from hvjob.testing.sim.config import job_spec
from hvjob.testing.sim.model import ClusterModel, FaultRule, SimJob
from hvjob.testing.sim.wsman import FAULT_KINDS, INJECTION_KINDS

_ALIASES = {"latency": "latency_ms"}


class Listeners(Protocol):
    """What runs the nodes' listeners (:class:`~hvjob.testing.sim.SimulatedCluster`)."""

    def listeners(self) -> dict[str, dict[str, Any]]: ...

    def stop_listening(self, node: str) -> None: ...

    def start_listening(self, node: str) -> None: ...

    def restart(self, node: str, seconds: float = 1.0) -> None: ...

    def close_connections(self, node: str) -> None: ...


class ControlAPI:
    def __init__(self, model: ClusterModel, listeners: Listeners | None = None) -> None:
        self.model = model
        self.listeners = listeners  # set once the listeners exist; None: no /_hvjob/nodes

    def handle(self, method: str, path: str, body: bytes) -> ControlReply | None:
        route, _, query = path.partition("?")
        route = route[len(CONTROL_PREFIX) :].strip("/")
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return ControlReply(400, {"error": "the body is not JSON"})
        if not isinstance(data, dict):
            return ControlReply(400, {"error": "the body must be a JSON object"})
        try:
            return self._route(method.upper(), route, data, parse_qs(query))
        except (UsageError, ValueError) as exc:
            return ControlReply(400, {"error": str(exc)})

    def _node_of(self, query: Mapping[str, list[str]]) -> str | None:
        """The ``?node=`` of a query, checked; None when absent."""
        values = query.get("node")
        if not values:
            return None
        node = self.model.node_name(values[-1])
        if node is None:
            raise UsageError(f"node: {values[-1]!r} is not a node of {self.model.name}")
        return node

    def _route(
        self, method: str, route: str, data: dict[str, Any], query: Mapping[str, list[str]] | None = None
    ) -> ControlReply:
        model = self.model
        query = query or {}
        if route in ("", "cluster") and method == "GET":
            return ControlReply(200, self.cluster())
        if route == "jobs" and method == "GET":
            return ControlReply(200, {"jobs": model.truth(self._node_of(query))})
        if route == "jobs" and method == "POST":
            return ControlReply(201, {"job": self.add_job(data)})
        if route.startswith("jobs/") and method == "GET":
            job = model.find(route[len("jobs/") :])
            if job is None:
                return ControlReply(404, {"error": f"no job {route[len('jobs/') :]}"})
            return ControlReply(200, {"job": self.truth_of(job)})
        if route == "log" and method == "GET":
            return ControlReply(200, {"log": model.log_dicts()})
        if route == "clock" and method in ("GET", "POST"):
            return ControlReply(200, self.clock(data if method == "POST" else {}))
        if route == "faults" and method == "GET":
            with model.lock:
                return ControlReply(200, {"faults": [rule.to_dict() for rule in model.faults]})
        if route == "faults" and method == "POST":
            return ControlReply(201, {"fault": self.add_fault(data).to_dict()})
        if route == "faults" and method == "DELETE":
            return ControlReply(200, {"cleared": model.clear_faults(self._node_of(query))})
        if route == "faults/log" and method == "GET":
            return ControlReply(200, {"fired": model.fault_log_dicts()})
        if (route == "nodes" or route.startswith("nodes/")) and self.listeners is not None:
            if route == "nodes" and method == "GET":
                return ControlReply(200, {"nodes": self.listeners.listeners()})
            if route.startswith("nodes/") and method == "POST":
                return ControlReply(200, self.node_action(route[len("nodes/") :], data))
        if route == "profile" and method == "POST":
            with model.lock:
                model.profile = model.profile.replace(data)
                return ControlReply(200, {"profile": model.profile.to_dict()})
        if route == "profile" and method == "GET":
            return ControlReply(200, {"profile": model.profile.to_dict()})
        if route == "reset" and method == "POST":
            model.reset()
            return ControlReply(200, {"reset": True, **self.cluster()})
        known = route in ("", "cluster", "jobs", "log", "clock", "faults", "faults/log", "profile", "reset")
        known = known or route.startswith("jobs/") or (self.listeners is not None and route.startswith("nodes"))
        if known:
            return ControlReply(405, {"error": f"{method} is not allowed on {CONTROL_PREFIX}{route}"})
        return ControlReply(404, {"error": f"no control resource {CONTROL_PREFIX}{route}"})

    # --- the operations (also used by SimulatedCluster) ------------------------------------------

    def cluster(self) -> dict[str, Any]:
        model = self.model
        now = model.clock.now()
        return {
            "cluster": model.name,
            "nodes": dict(model.urls) if model.urls else {n: None for n in model.nodes},
            "profile": model.profile.to_dict(),
            "time": model.clock.datetime_at(now).isoformat(),
            "speed": model.clock.speed,
        }

    def truth_of(self, job: SimJob) -> dict[str, Any]:
        with self.model.lock:
            now = self.model.clock.now()
            self.model.settle_job(job, now)
            return self.model.job_truth(job, now)

    def add_job(self, data: Mapping[str, Any]) -> dict[str, Any]:
        spec = job_spec(data, self.model.nodes, lambda name: name, default_id=None)
        return self.truth_of(self.model.add_job(spec))

    def clock(self, data: Mapping[str, Any]) -> dict[str, Any]:
        for key in data:
            if key not in ("advance", "speed"):
                raise UsageError(f"clock: unknown field {key!r} (advance, speed)")
        advance, speed = data.get("advance"), data.get("speed")
        for name, value in (("advance", advance), ("speed", speed)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise UsageError(f"clock: {name} must be a number of seconds, zero or more")
        clock = self.model.clock
        if speed is not None:
            clock.speed = float(speed)
        if advance:
            clock.advance(float(advance))
        return {"time": clock.datetime_at(clock.now()).isoformat(), "seconds": clock.now(), "speed": clock.speed}

    def node_action(self, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /_hvjob/nodes/NODE``: one of ``listening``, ``restart``, ``close_connections``."""
        assert self.listeners is not None
        node = self.model.node_name(name)
        if node is None:
            raise UsageError(f"nodes: {name!r} is not a node of {self.model.name}")
        if len(data) != 1 or next(iter(data)) not in ("listening", "restart", "close_connections"):
            raise UsageError("nodes: give one of listening (true/false), restart (seconds), close_connections (true)")
        ((action, value),) = data.items()
        if action == "listening":
            if not isinstance(value, bool):
                raise UsageError("nodes: listening must be true or false")
            (self.listeners.start_listening if value else self.listeners.stop_listening)(node)
        elif action == "restart":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UsageError("nodes: restart must be a number of seconds, zero or more")
            self.listeners.restart(node, float(value))
        elif value is not True:
            raise UsageError("nodes: close_connections must be true")
        else:
            self.listeners.close_connections(node)
        return {"node": node, **self.listeners.listeners()[node]}

    def add_fault(self, data: Mapping[str, Any]) -> FaultRule:
        fields = {_ALIASES.get(k, k): v for k, v in data.items()}
        kind = fields.pop("kind", None)
        kind = _ALIASES.get(str(kind), kind)
        if kind not in (*FAULT_KINDS, *INJECTION_KINDS):
            raise UsageError(f"faults: kind must be one of {', '.join((*FAULT_KINDS, *INJECTION_KINDS))}")
        count = fields.pop("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise UsageError("faults: count must be a whole number of requests, 1 or more")
        node = fields.pop("node", None)
        if node is not None and self.model.node_name(str(node)) is None:
            raise UsageError(f"faults: {node!r} is not a node of {self.model.name}")
        method = fields.pop("method", None)
        job = fields.pop("job", None)
        skip = fields.pop("skip", 0)
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise UsageError("faults: skip must be a whole number of requests, 0 or more")
        for key in fields:
            if key not in (*INJECTION_KINDS, "seconds", "fault", "size", "execute"):
                raise UsageError(f"faults: unknown field {key!r}")
        seconds = fields.get("seconds")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0):
            raise UsageError("faults: seconds must be a number, zero or more")
        if "execute" in fields and (kind != "restart" or not isinstance(fields["execute"], bool)):
            raise UsageError("faults: execute (true or false) goes with a restart fault")
        if kind in INJECTION_KINDS and kind not in fields:
            raise UsageError(f"faults: a {kind} fault needs its {kind!r} field (docs/fixtures.md)")
        if kind == "fault" and fields.get("fault", "generic_failure") not in faults.INJECTABLE:
            raise UsageError(f"faults: fault must be one of {', '.join(faults.INJECTABLE)}")
        rule = FaultRule(str(kind), count, node=node, method=method, job=job, fields=fields, skip=skip)
        return self.model.add_fault(rule)
