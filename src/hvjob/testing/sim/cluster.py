"""SimulatedCluster: a simulated Hyper-V failover cluster, one WinRM listener per node, for tests.

::

    from hvjob.testing import SimulatedCluster

    with SimulatedCluster(nodes=3, profile={"killjob": "returns-1"}, speed=0) as cluster:
        cluster.urls                     # {"HVNODE01": "http://127.0.0.1:PORT/wsman", ...}
        cluster.jobs()                   # the ground truth (GET /_hvjob/jobs)
        cluster.advance(60)              # simulated seconds
        cluster.inject(node="HVNODE01", method="KillJob", kind="drop_after_execute")
        cluster.log()                    # every method the providers executed
        cluster.fault_log()              # every request a fault spoiled
        cluster.restart("HVNODE02", 0.5) # its listener gone (refused) for 0.5 s, then back with its state

Every node listens on its own port (consecutive from ``port``, or free ports with 0) behind the
real front (NTLM, Kerberos, CredSSP, Basic, TLS, message encryption); one thread accepts for all.
Without ``users_file`` a users file with one account (``username``, a generated ``password``) is
written to a temporary directory.
"""

from __future__ import annotations

import secrets
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hvjob.testing.front import ListenerGroup, WinRMFront
from hvjob.testing.sim.clock import Clock
from hvjob.testing.sim.config import cluster_spec, load_cluster_file
from hvjob.testing.sim.control import ControlAPI
from hvjob.testing.sim.default import default_cluster_spec
from hvjob.testing.sim.model import ClusterModel, ClusterSpec
from hvjob.testing.sim.profile import Profile
from hvjob.testing.sim.wsman import NodeBackend
from hvjob.transport import ConnectionOptions


class SimulatedCluster:
    """A running simulated cluster; a context manager. See the module docstring."""

    def __init__(
        self,
        cluster: ClusterSpec | Path | str | Mapping[str, Any] | None = None,
        *,
        nodes: int | Sequence[str] | None = None,
        jobs: Sequence[Mapping[str, Any]] | None = None,
        profile: Profile | Mapping[str, Any] | None = None,
        speed: float | None = None,
        name: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        users_file: Path | str | None = None,
        username: str = "hvjob-admin",
        password: str | None = None,
        auth: Iterable[str] = ("negotiate", "basic"),
        tls: ssl.SSLContext | None = None,
        cbt: str = "relaxed",
        allow_unencrypted: bool | None = None,
        keytab: Path | str | None = None,
        idle_timeout: float | None = None,
        latency_ms: float = 0.0,
        on_request: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        spec = _spec(cluster, nodes=nodes, jobs=jobs, name=name)
        if profile is not None:
            chosen = profile if isinstance(profile, Profile) else spec.profile.replace(profile)
            spec = ClusterSpec(spec.name, spec.nodes, spec.jobs, spec.speed, chosen, spec.start, spec.source)
        if speed is not None:
            spec = ClusterSpec(spec.name, spec.nodes, spec.jobs, speed, spec.profile, spec.start, spec.source)
        self.spec = spec
        self.model = ClusterModel(spec)
        self.control_api = ControlAPI(self.model)
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        if users_file is None:
            self._directory = tempfile.TemporaryDirectory(prefix="hvjob-sim-")
            self.password = password or secrets.token_urlsafe(18)
            users_file = Path(self._directory.name) / "users.txt"
            users_file.write_text(f":{username}:{self.password}\n", encoding="utf-8")
            users_file.chmod(0o600)
        else:
            self.password = password or ""
        self.username = username
        self.users_file = Path(users_file)
        self.fronts: list[WinRMFront] = []
        try:
            for index, node in enumerate(spec.nodes):
                backend = NodeBackend(
                    self.model, node, control=self.control_api.handle, on_request=on_request, restart=self.restart
                )
                self.fronts.append(
                    WinRMFront(
                        backend,
                        host=host,
                        port=port + index if port else 0,
                        users_file=self.users_file,
                        auth=auth,
                        tls=tls,
                        cbt=cbt,
                        allow_unencrypted=allow_unencrypted,
                        idle_timeout=idle_timeout,
                        latency_ms=latency_ms,
                        machine=node,
                        keytab=keytab,
                    )
                )
        except OSError:
            self._close_unstarted()
            raise
        self.model.urls = {front.machine: front.url for front in self.fronts}
        self._group = ListenerGroup(self.fronts)
        self._running = False
        self._timers: list[threading.Timer] = []  # restarts under way: each brings a listener back
        self._timers_lock = threading.Lock()
        self.control_api.listeners = self

    def _close_unstarted(self) -> None:
        for front in self.fronts:
            front.stop()
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    # --- life cycle --------------------------------------------------------------------------

    def start(self) -> SimulatedCluster:
        self._group.start()
        self._running = True
        return self

    def stop(self) -> None:
        with self._timers_lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        if self._running:
            self._group.stop()
            self._running = False
        else:
            self._close_unstarted()
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    def __enter__(self) -> SimulatedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- where the nodes are -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def nodes(self) -> list[str]:
        return list(self.model.nodes)

    @property
    def urls(self) -> dict[str, str]:
        return dict(self.model.urls)

    def url(self, node: str | None = None) -> str:
        """The listener URL of ``node`` (the first node by default)."""
        if node is None:
            return self.fronts[0].url
        name = self.model.node_name(node)
        if name is None:
            raise KeyError(node)
        return self.model.urls[name]

    @property
    def resolve(self) -> dict[str, str]:
        """``node -> host:port``, for hvjob's ``--resolve NODE=HOST:PORT`` after ``--cluster`` discovery."""
        return {front.machine: f"{front.host}:{front.port}" for front in self.fronts}

    @property
    def scheme(self) -> str:
        return self.fronts[0].scheme

    def connection_options(self, **overrides: Any) -> ConnectionOptions:
        """hvjob ``ConnectionOptions`` for this cluster's account (HTTP with encryption, or HTTPS)."""
        base: dict[str, Any] = {"username": self.username, "password": self.password, "scheme": self.scheme}
        base.update(overrides)
        return ConnectionOptions(**base)

    # --- listeners going away and coming back ---------------------------------------------------

    def _front(self, node: str) -> WinRMFront:
        name = self.model.node_name(node)
        if name is None:
            raise KeyError(node)
        return next(front for front in self.fronts if front.machine == name)

    def listeners(self) -> dict[str, dict[str, Any]]:
        """Each node's URL, whether its listener is up, and its open connections (``GET /_hvjob/nodes``)."""
        return {
            front.machine: {"url": front.url, "listening": front.listening, "connections": front.open_connections}
            for front in self.fronts
        }

    def stop_listening(self, node: str) -> None:
        """``node``'s listener goes away, as when its WinRM service stops: its connections close, new
        ones are refused. The node's jobs, log and clock are the cluster's and stay as they are."""
        self._front(node).stop_listening()

    def start_listening(self, node: str) -> None:
        """``node``'s listener is back, on the same port."""
        self._front(node).start_listening()

    def restart(self, node: str, seconds: float = 1.0) -> None:
        """Stop ``node``'s listener now and start it again after ``seconds`` (real seconds)."""
        front = self._front(node)
        front.stop_listening()
        timer = threading.Timer(seconds, self._restarted, args=(front,))
        timer.daemon = True
        with self._timers_lock:
            self._timers.append(timer)
        timer.start()

    def _restarted(self, front: WinRMFront) -> None:
        front.start_listening()
        with self._timers_lock:
            self._timers = [t for t in self._timers if t.is_alive() and t is not threading.current_thread()]

    def wait_listening(self, node: str, timeout: float | None = None) -> bool:
        """Block until ``node``'s listener is up (after a restart); False if ``timeout`` passed first."""
        return self._front(node).wait_listening(timeout)

    def close_connections(self, node: str) -> None:
        """Close ``node``'s open keep-alive connections now, as Windows does after its idle timeout."""
        self._front(node).close_idle_connections()

    # --- ground truth and control ----------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self.model.clock

    @property
    def profile(self) -> Profile:
        return self.model.profile

    def set_profile(self, **switches: Any) -> Profile:
        with self.model.lock:
            self.model.profile = self.model.profile.replace(switches)
            return self.model.profile

    def advance(self, seconds: float) -> None:
        """Move the simulated clock on by ``seconds``."""
        self.model.clock.advance(seconds)

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, gone ones included (``removed``), as ``GET /_hvjob/jobs`` gives them."""
        return self.model.truth()

    def job(self, job_id: str) -> dict[str, Any]:
        job = self.model.find(job_id)
        if job is None:
            raise KeyError(job_id)
        return self.control_api.truth_of(job)

    def log(self) -> list[dict[str, Any]]:
        """Every method the providers executed, in order, answered or not (``GET /_hvjob/log``)."""
        return self.model.log_dicts()

    def fault_log(self) -> list[dict[str, Any]]:
        """Every use of an injected fault: the node, request, job, kind and the request's MessageID
        (``GET /_hvjob/faults/log``)."""
        return self.model.fault_log_dicts()

    def clear_faults(self, node: str | None = None) -> int:
        """Drop pending faults (those naming ``node``, if given); how many (``DELETE /_hvjob/faults``)."""
        return self.model.clear_faults(node)

    def add_job(self, **fields: Any) -> dict[str, Any]:
        """Add a job (the cluster file's job fields; ``class`` may be given as ``class_name``)."""
        if "class_name" in fields:
            fields["class"] = fields.pop("class_name")
        return self.control_api.add_job(fields)

    def inject(
        self, *, kind: str, node: str | None = None, method: str | None = None, count: int = 1, **fields: Any
    ) -> None:
        """Add a fault (``POST /_hvjob/faults``): ``kind`` and the kind's own fields."""
        self.control_api.add_fault({"kind": kind, "node": node, "method": method, "count": count, **fields})

    def reset(self) -> None:
        self.model.reset()


def _spec(
    cluster: ClusterSpec | Path | str | Mapping[str, Any] | None,
    *,
    nodes: int | Sequence[str] | None,
    jobs: Sequence[Mapping[str, Any]] | None,
    name: str | None,
) -> ClusterSpec:
    if isinstance(cluster, ClusterSpec):
        return cluster
    if isinstance(cluster, (str, Path)):
        return load_cluster_file(cluster)
    if isinstance(cluster, Mapping):
        return cluster_spec(cluster)
    if jobs is not None:
        data: dict[str, Any] = {"cluster": name or "HVCLUSTER", "nodes": nodes or 3, "jobs": list(jobs)}
        return cluster_spec(data)
    spec = default_cluster_spec(nodes if nodes is not None else 3)
    if name:
        spec = ClusterSpec(name, spec.nodes, spec.jobs, spec.speed, spec.profile, spec.start, spec.source)
    return spec
