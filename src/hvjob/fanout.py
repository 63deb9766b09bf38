"""Run one job operation on many hosts at once, and discover the nodes of a failover cluster.

Concurrency is bounded; every host has its own session (one authenticated keep-alive connection),
so a slow or dead host holds only its own slot, up to its own timeouts. Every host gets a result.
The first Ctrl-C sends no further request on any host (one already on the wire may finish) and
reports, per host, what was sent and what is unknown; a second Ctrl-C stops waiting for the
requests still on the wire and reports them as unanswered.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import pickle
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import connection as mp_connection
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from hvjob.errors import HvjobError, InternalError, Interrupted, OutcomeUnknown, ProtocolError, UsageError
from hvjob.jobs import JobClient, JobFilter, OperationResult, SentRequest, changed_by, found_by
from hvjob.recorder import FixtureRecorder
from hvjob.transport import ConnectionOptions, WsmanSession, endpoint_url
from hvjob.transport.session import CancelFlag
from hvjob.wire import build, ns, schema
from hvjob.wire.parse import EnumerationPage

log = logging.getLogger("hvjob.fanout")


@dataclass(frozen=True)
class HostTarget:
    """A host as the user named it, where to connect, and its connection options."""

    name: str
    address: str
    options: ConnectionOptions


Operation = Callable[[JobClient], OperationResult]

#: Commands that may send a mutating method: a host lost with its worker may have been changed.
MUTATING_COMMANDS = frozenset({"stop", "kill"})


@dataclass
class FanoutReport:
    """Results in host order (one per host), and the summary of docs/cli.md.

    ``interrupted``: Ctrl-C (or the caller's ``cancel``) stopped the fan-out. ``forced``: a second
    Ctrl-C stopped it waiting for requests still on the wire; their threads may still be running,
    so a program should exit soon after reporting (the CLI does, at once).
    """

    command: str
    results: list[OperationResult]
    interrupted: bool = False
    forced: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    workers: list[WorkerStats] = field(default_factory=list)  # empty when the fan-out ran in threads here
    recordings: list[str] = field(default_factory=list)  # the files --record wrote, one per host recorded

    @property
    def summary(self) -> dict[str, Any]:
        counts = {"ok": 0, "failed": 0, "unreachable": 0}
        for result in self.results:
            counts[result.status] += 1
        data: dict[str, Any] = dict(counts)
        data.update(self.extra)
        if self.interrupted:
            data["interrupted"] = True
        return data

    @property
    def exit_code(self) -> int:
        """130 interrupted; 70 an internal error; 2 a usage error on some host (the same mistake
        everywhere, most likely); 3 some host unreachable; 1 some failed; 4 only waits that ran
        out; 0 all ok (docs/cli.md)."""
        if self.interrupted:
            return 130
        types = {r.error.type for r in self.results if r.error is not None}
        if "internal" in types:
            return 70
        if "usage" in types:
            return 2
        statuses = {r.status for r in self.results}
        if "unreachable" in statuses:
            return 3
        failed = [r for r in self.results if r.status == "failed"]
        if failed and all(r.error is not None and r.error.type == "wait_timeout" for r in failed):
            return 4
        if failed:
            return 1
        return 0

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "results": [r.to_dict() for r in self.results], "summary": self.summary}


def run(
    command: str,
    targets: list[HostTarget],
    operation: Operation,
    *,
    concurrency: int = 32,
    processes: int | None = None,
    client_options: Mapping[str, Any] | None = None,
    record_dir: str | None = None,
    on_result: Callable[[OperationResult], None] | None = None,
    cancel: threading.Event | None = None,
) -> FanoutReport:
    """Run ``operation`` on every target; one result per target, in the order given.

    ``processes`` spreads the hosts over that many forked worker processes, each with its own
    threads and GIL, for fan-outs too large for one core (None: :func:`plan_processes` decides;
    1: threads in this process only). ``on_result`` is always called in this process. Setting
    ``cancel`` (or Ctrl-C, when called from the main thread) stops every host before its next
    request; hosts not started by then are reported as not contacted.
    """
    if concurrency < 1:
        raise UsageError("concurrency must be at least 1")
    if processes is not None and processes < 1:
        raise UsageError("processes must be at least 1")
    cancel = cancel or threading.Event()
    abandon = threading.Event()
    work = _Work(command, operation, client_options, record_dir)
    indexed = list(enumerate(targets))
    results: dict[int, OperationResult] = {}

    def deliver(index: int, result: OperationResult) -> None:
        results[index] = result
        if on_result is not None:
            on_result(result)

    workers = plan_processes(len(targets), concurrency, processes)
    stats: list[WorkerStats] = []
    saved: list[str] = []
    with _InterruptsToEvents(cancel, abandon) as interrupts:
        if workers > 1:
            _run_processes(work, indexed, workers, concurrency, deliver, cancel, abandon, stats, saved)
        else:
            _run_threads(work, indexed, concurrency, deliver, cancel, abandon, saved, announce=True)
    missing = [targets[i].name for i, _ in indexed if i not in results]
    if missing:  # a bug, not a host's failure: every path above delivers one result per host
        raise AssertionError(f"fan-out lost the results of {missing}")
    ordered = [results[i] for i in sorted(results)]
    interrupted = cancel.is_set() or interrupts.caught
    return FanoutReport(
        command, ordered, interrupted=interrupted, forced=abandon.is_set(), workers=stats, recordings=sorted(saved)
    )


@dataclass(frozen=True)
class _Work:
    """What is done on each host; the same in the thread runner and in worker processes."""

    command: str
    operation: Operation
    client_options: Mapping[str, Any] | None
    record_dir: str | None

    def on(
        self, index: int, target: HostTarget, recorders: list[FixtureRecorder], cancel: CancelFlag, live: _Live
    ) -> OperationResult:
        recorder = None
        if self.record_dir:
            recorder = FixtureRecorder(
                self.record_dir,
                f"{self.command}-{_safe(target.name)}",
                endpoint=target.address,
                username=target.options.username,
            )
            recorders.append(recorder)
        try:
            with WsmanSession(target.address, target.options, recorder=recorder) as session:
                if recorder is not None and not cancel.is_set():
                    # The recording says what answered it: the target's own Identify (noted by the recorder).
                    with contextlib.suppress(HvjobError):  # the operation reports what fails here
                        session.identify()
                client = JobClient(session, cancel=cancel, **dict(self.client_options or {}))
                live.started(index, client)
                try:
                    result = self.operation(client)
                finally:
                    live.finished(index)
        except HvjobError as exc:
            result = OperationResult(target.address, self.command, error=exc)
        except Exception as exc:  # a bug: the transport translates every foreign exception
            log.debug("internal error on %s", target.name, exc_info=True)
            error = InternalError(
                f"internal error: {type(exc).__name__}: {exc} (a bug: please report it)", host=target.name
            )
            result = OperationResult(target.address, self.command, error=error, changed=None)
        result.host = target.name
        if result.error is not None:
            result.error.drop_tracebacks()  # logged already; a thousand kept tracebacks are not
        return result

    def not_contacted(self, target: HostTarget) -> OperationResult:
        error = Interrupted("interrupted before this host was contacted; nothing was sent", host=target.name)
        return OperationResult(target.name, self.command, error=error)

    def abandoned(self, target: HostTarget, sent: list[SentRequest]) -> OperationResult:
        """The report of a host whose operation was still running when the fan-out stopped waiting."""
        done = ", ".join(f"{r.request} ({r.outcome})" for r in sent) or "nothing"
        unanswered = [r for r in sent if r.outcome in ("in flight", "unknown")]
        error = Interrupted(
            f"interrupted with a request on the wire; sent: {done}"
            + ("; whether the unanswered request ran is unknown" if unanswered else ""),
            host=target.name,
        )
        result = OperationResult(target.name, self.command, error=error, requests=sent, changed=changed_by(sent))
        result.method = next((r.request for r in reversed(sent) if r.mutating), sent[-1].request if sent else None)
        result.job = next((r.job for r in sent if r.job), None)
        if result.job is not None:
            result.found = found_by(result.job, sent)
        return result


class _Live:
    """The clients of the hosts whose operation is running now, for an interrupted fan-out's report."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[int, JobClient] = {}

    def started(self, index: int, client: JobClient) -> None:
        with self._lock:
            self._clients[index] = client

    def finished(self, index: int) -> None:
        with self._lock:
            self._clients.pop(index, None)

    def requests_of(self, index: int) -> list[SentRequest]:
        with self._lock:
            client = self._clients.get(index)
        return client.requests_in_progress() if client is not None else []


def _announce_interrupt() -> None:
    log.warning("interrupted: no further request will be sent; finishing those on the wire (Ctrl-C again to stop)")


class _Cancelled(Exception):
    pass


def _run_threads(
    work: _Work,
    indexed: list[tuple[int, HostTarget]],
    concurrency: int,
    deliver: Callable[[int, OperationResult], None],
    cancel: CancelFlag,
    abandon: CancelFlag,
    saved: list[str],
    *,
    announce: bool = False,
) -> None:
    """Run the hosts in a thread pool; deliver one result per host, each as soon as it is known.

    Once ``cancel`` is set, hosts not started are delivered as not contacted and running ones stop
    before their next request; once ``abandon`` is set, the hosts still running are delivered at once
    with what they had sent (see :meth:`_Work.abandoned`) and their threads are left to finish.
    """
    recorders: list[FixtureRecorder] = []
    live = _Live()

    def task(index: int, target: HostTarget) -> OperationResult:
        if cancel.is_set():
            raise _Cancelled
        return work.on(index, target, recorders, cancel, live)

    executor = ThreadPoolExecutor(max_workers=min(concurrency, max(1, len(indexed))), thread_name_prefix="hvjob")
    futures: dict[Future[OperationResult], tuple[int, HostTarget]] = {}
    left = False

    def collect(future: Future[OperationResult]) -> None:
        index, target = futures[future]
        try:
            result = future.result()
        except (_Cancelled, CancelledError):
            result = work.not_contacted(target)
        deliver(index, result)

    try:
        for index, target in indexed:
            futures[executor.submit(task, index, target)] = (index, target)
        pending = set(futures)
        cancelled = False
        while pending:
            if cancel.is_set() and not cancelled:
                cancelled = True
                for future in pending:
                    future.cancel()  # queued hosts never start
                if announce:
                    _announce_interrupt()
            if abandon.is_set():
                left = True
                break
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            for future in done:
                collect(future)
        for future in pending:  # abandoned: running hosts report what they had sent
            if future.done():
                collect(future)
            else:
                index, target = futures[future]
                deliver(index, work.abandoned(target, live.requests_of(index)))
    except BaseException:
        # Results can no longer be delivered (say the output pipe closed): start no other host.
        for future in futures:
            future.cancel()
        raise
    finally:
        executor.shutdown(wait=not left, cancel_futures=True)
        for recorder in recorders:
            if not len(recorder):
                continue  # nothing was exchanged (an unreachable host): no empty recording
            try:
                saved.append(str(recorder.save()))
            except OSError as exc:
                log.warning("cannot write recording: %s", exc)


# --- worker processes ----------------------------------------------------------------------------

#: Hosts per worker process when hvjob chooses: up to about this many, one interpreter's threads keep
#: up with a 100 ms link and a second process only costs memory (docs/performance.md).
HOSTS_PER_PROCESS = 64


@dataclass(frozen=True)
class WorkerStats:
    """One worker process of a fan-out: how many hosts it had, its peak RSS, how it ended."""

    pid: int
    hosts: int
    peak_rss_mb: float | None
    exitcode: int | None


def plan_processes(hosts: int, concurrency: int, requested: int | None = None) -> int:
    """How many worker processes a fan-out uses.

    Requested: that many (at most one per host and per concurrency slot), if this platform can
    fork. Not requested: one per usable CPU and per ``HOSTS_PER_PROCESS`` hosts, and only when
    forking is safe here (Linux, and no other thread running in this process); else 1.
    """
    if requested is None:
        if not _fork_is_safe():
            return 1
        requested = min(_usable_cpus(), math.ceil(hosts / HOSTS_PER_PROCESS))
    workers = max(1, min(requested, hosts, concurrency))
    if workers > 1 and not _can_fork():
        log.warning("worker processes need fork(), which this platform lacks: using threads only")
        return 1
    return workers


def _can_fork() -> bool:
    return sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods()


def _fork_is_safe() -> bool:
    """fork() copies only the calling thread; a lock held by another thread stays held forever."""
    return _can_fork() and threading.active_count() == 1


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _run_processes(
    work: _Work,
    indexed: list[tuple[int, HostTarget]],
    workers: int,
    concurrency: int,
    deliver: Callable[[int, OperationResult], None],
    cancel: threading.Event,
    abandon: threading.Event,
    stats: list[WorkerStats],
    saved: list[str],
) -> None:
    """Fork ``workers`` processes, each running a share of the hosts in its own thread pool.

    Results come back pickled over one pipe per worker. Workers ignore SIGINT: Ctrl-C here sets
    ``cancel`` (then ``abandon``), which this process passes on through shared events, so workers
    behave as threads do. A worker that dies leaves its unreported hosts with an
    ``outcome_unknown`` error. If a worker cannot be started, none starts work and the fan-out runs
    in threads here instead.
    """
    context = multiprocessing.get_context("fork")
    stop, give_up, go = context.Event(), context.Event(), context.Event()
    shares = [indexed[i::workers] for i in range(workers)]
    slots = [concurrency // workers + (1 if i < concurrency % workers else 0) for i in range(workers)]
    received = _Received()
    running = _start_workers(context, work, shares, slots, stop, give_up, go)
    if running is None:
        _run_threads(work, indexed, concurrency, deliver, cancel, abandon, saved)
        return
    if cancel.is_set():
        stop.set()
    go.set()
    try:
        _receive(running, deliver, received, cancel, abandon, stop, give_up)
    except BaseException:
        stop.set()  # results can no longer be delivered: no worker starts another host
        raise
    finally:
        for process, reader, _ in running:
            process.join(timeout=None if not abandon.is_set() else _ABANDON_GRACE)
            if process.is_alive():
                process.terminate()
                process.join()
            reader.close()
    for process, _, share in running:
        stats.append(WorkerStats(process.pid, len(share), received.peaks.get(process.pid), process.exitcode))
        if process.pid in received.peaks and process.pid not in received.garbled:
            continue  # it finished and reported every one of its hosts
        if process.pid in received.garbled:
            why = "its worker process sent a result that could not be read"
        else:
            why = f"its worker process ended unexpectedly (exit code {process.exitcode})"
        for index, target in share:
            if index not in received.delivered:
                error = OutcomeUnknown(f"{why}; whether the operation ran is unknown", host=target.name)
                changed = None if work.command in MUTATING_COMMANDS else False
                deliver(index, OperationResult(target.name, work.command, error=error, changed=changed))
    saved.extend(received.saved)


#: Seconds workers get, after a second Ctrl-C, to report their running hosts before they are killed.
_ABANDON_GRACE = 3.0

_Running = list[tuple[Any, Any, list[tuple[int, HostTarget]]]]


@dataclass
class _Received:
    """What the workers reported: the hosts delivered, each worker's peak RSS, unreadable senders."""

    delivered: set[int] = field(default_factory=set)
    peaks: dict[int, float] = field(default_factory=dict)
    garbled: set[int] = field(default_factory=set)
    saved: list[str] = field(default_factory=list)  # recordings the workers wrote


def _start_workers(
    context: Any,
    work: _Work,
    shares: list[list[tuple[int, HostTarget]]],
    slots: list[int],
    stop: Any,
    give_up: Any,
    go: Any,
) -> _Running | None:
    """Fork one worker per share; each waits for ``go``. None, with no host touched, if fork fails."""
    running: _Running = []
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # until workers ignore it
    try:
        for share, slot in zip(shares, slots, strict=True):
            reader, writer = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker,
                args=(writer, work, share, slot, stop, give_up, go, os.getpid()),
                name="hvjob-fanout",
                daemon=True,
            )
            try:
                process.start()
            finally:
                writer.close()
            running.append((process, reader, share))
    except OSError as exc:
        log.warning("cannot start fan-out worker processes (%s); using threads only", exc)
        stop.set()
        go.set()
        for process, reader, _ in running:
            reader.close()  # before join: a worker blocked writing to a full pipe then sees it closed
            process.join()
        return None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    log.debug("fan-out over %d worker processes: %s", len(running), [p.pid for p, _, _ in running])
    return running


def _receive(
    running: _Running,
    deliver: Callable[[int, OperationResult], None],
    received: _Received,
    cancel: threading.Event,
    abandon: threading.Event,
    stop: Any,
    give_up: Any,
) -> None:
    """Deliver results as workers send them, until every worker has closed its pipe (or, once
    abandoned, until the grace period is over)."""
    open_readers: dict[Any, int] = {reader: process.pid for process, reader, _ in running}
    deadline: float | None = None
    announced = False
    while open_readers:
        if cancel.is_set():
            stop.set()
            if not announced:
                announced = True
                _announce_interrupt()
        if abandon.is_set() and deadline is None:
            give_up.set()
            deadline = time.monotonic() + _ABANDON_GRACE
        if deadline is not None and time.monotonic() > deadline:
            return
        for ready in mp_connection.wait(list(open_readers), timeout=0.1):
            try:
                message: tuple[Any, ...] = cast(Any, ready).recv()
            except (EOFError, OSError):  # the worker has exited
                del open_readers[ready]
                continue
            except Exception:  # a message that does not unpickle: its host is reported lost
                log.debug("unreadable result from worker %s", open_readers[ready], exc_info=True)
                received.garbled.add(open_readers[ready])
                continue
            if message[0] == "result":
                received.delivered.add(message[1])
                deliver(message[1], message[2])
            elif message[0] == "saved":
                received.saved.extend(message[1])
            else:  # ("done", peak RSS in MB)
                received.peaks[open_readers[ready]] = message[1]


class _InterruptsToEvents:
    """While active (main thread only): the first Ctrl-C sets ``cancel``, a second ``abandon``.

    No KeyboardInterrupt is raised in the middle of the fan-out's bookkeeping, so whatever the
    timing every host still gets its result.
    """

    def __init__(self, cancel: threading.Event, abandon: threading.Event) -> None:
        self.cancel = cancel
        self.abandon = abandon
        self.caught = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.caught:
            self.abandon.set()
            return
        self.caught = True
        self.cancel.set()

    def __enter__(self) -> _InterruptsToEvents:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _WorkerStop:
    """Set when the parent says stop, or when the parent is gone: a fan-out whose results nobody
    reads (hvjob killed, its terminal closed) must not go on changing the cluster."""

    def __init__(self, stop: Any, parent: int) -> None:
        self._stop = stop
        self._parent = parent

    def parent_gone(self) -> bool:
        return os.getppid() != self._parent

    def is_set(self) -> bool:
        return bool(self._stop.is_set()) or self.parent_gone()


def _worker(
    writer: Any,
    work: _Work,
    share: list[tuple[int, HostTarget]],
    concurrency: int,
    stop: Any,
    give_up: Any,
    go: Any,
    parent: int,
) -> None:
    """A forked worker: run ``share`` in threads, send each result, then ``("done", peak RSS MB)``.

    Told to give up (a second Ctrl-C), it reports its running hosts and exits without waiting for
    their threads.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    halt = _WorkerStop(stop, parent)

    def send(index: int, result: OperationResult) -> None:
        try:
            writer.send(("result", index, result))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:  # a result that cannot cross
            log.debug("cannot send the result for %s", result.host, exc_info=True)
            outcome = "succeeded" if result.error is None else f"failed: {result.error.message}"
            error = ProtocolError(f"the result ({outcome}) could not be passed back from its worker process: {exc}")
            substitute = OperationResult(
                result.host, work.command, job=result.job, changed=result.changed, error=error, requests=result.requests
            )
            writer.send(("result", index, substitute))

    try:
        while not go.wait(0.5):
            if halt.parent_gone():
                return
        saved: list[str] = []
        _run_threads(work, share, concurrency, send, halt, give_up, saved)
        writer.send(("saved", saved))
        writer.send(("done", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    except Exception:  # the parent reports this worker's unfinished hosts; no traceback here
        log.debug("fan-out worker failed", exc_info=True)
    finally:
        writer.close()
    if give_up.is_set():
        os._exit(0)  # threads still waiting on the network must not hold this process


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# --- cluster -------------------------------------------------------------------------------------
#
# On a failover cluster the same job can be visible from several nodes (the cluster namespace) or
# only from the node that owns it; hvjob cannot tell which from outside. Either way each job is
# listed once and acted on once: by the first node, in the order the cluster reported its nodes,
# that answers for it. The nodes that do not have it are not failures.


def discover_cluster_nodes(target: HostTarget) -> list[str]:
    """Names of the failover cluster nodes, from ``MSCluster_Node`` in ``root/MSCluster``."""
    return [node.name for node in discover_cluster(target).nodes]


#: MSCluster_Node.State (Microsoft's MSCluster_Node page); any other value is shown as its number.
NODE_STATES = {-1: "Unknown", 0: "Up", 1: "Down", 2: "Paused", 3: "Joining"}


@dataclass(frozen=True)
class ClusterNode:
    """A node as ``MSCluster_Node`` reports it; ``state`` is None when the node does not say."""

    name: str
    state: int | None = None

    @property
    def state_label(self) -> str | None:
        return None if self.state is None else NODE_STATES.get(self.state, str(self.state))


@dataclass(frozen=True)
class ClusterInfo:
    """A failover cluster seen from one node: its name (None when ``MSCluster_Cluster`` gives
    none) and its nodes in the order the cluster reported them."""

    name: str | None
    nodes: list[ClusterNode]


def discover_cluster(target: HostTarget) -> ClusterInfo:
    """The cluster's name and nodes with their state, over one session: ``MSCluster_Node``
    (required: the same errors as :func:`discover_cluster_nodes`), then ``MSCluster_Cluster``
    (optional: a node that cannot answer it leaves the name None). For inventories, which group
    the nodes by cluster."""
    uri = ns.wmi_namespace_uri("root/MSCluster")
    try:
        with WsmanSession(target.address, target.options) as session:
            rows = _enumerate_all(session, uri, "MSCluster_Node", "SELECT * FROM MSCluster_Node", target.name)
            nodes = [
                ClusterNode(str(row["Name"]), row.get("State") if isinstance(row.get("State"), int) else None)
                for row in rows
                if row.get("Name")
            ]
            if not nodes:
                raise ProtocolError("the cluster reported no nodes (MSCluster_Node is empty)", host=target.name)
            try:
                clusters = _enumerate_all(
                    session, uri, "MSCluster_Cluster", "SELECT * FROM MSCluster_Cluster", target.name
                )
            except HvjobError as exc:
                if exc.type not in ("wsman_fault", "protocol"):
                    raise
                log.debug("MSCluster_Cluster on %s: %s; the cluster's name is unknown", target.name, exc.message)
                clusters = []
    except HvjobError as exc:
        if exc.type in ("wsman_fault", "protocol") and not exc.message.startswith("the cluster reported"):
            exc.message = (
                f"cluster discovery (MSCluster_Node in root/MSCluster) failed: {exc.message}; "
                "is this a failover cluster node with the cluster WMI provider?"
            )
            exc.args = (exc.message,)
        raise
    name = next((str(row["Name"]) for row in clusters if row.get("Name")), None)
    return ClusterInfo(name, nodes)


def _enumerate_all(session: WsmanSession, uri: str, class_name: str, wql: str, host: str) -> list[dict[str, Any]]:
    """Every instance that ``wql`` selects over ``uri``, its properties typed as ``class_name``'s."""
    page = session.send(build.build_enumerate(session.header_options, uri, wql=wql))
    rows: list[dict[str, Any]] = []
    while True:
        if not isinstance(page, EnumerationPage):
            raise ProtocolError(f"{class_name} enumeration returned no page", host=host)
        rows.extend(schema.typed_properties(class_name, item.properties, fallback=None) for item in page.items)
        if page.end_of_sequence or not page.context:
            return rows
        page = session.send(build.build_pull(session.header_options, uri, page.context))


def resolved(name: str, resolve: Mapping[str, str]) -> str | None:
    """Where ``--resolve`` says ``name`` is; node names are case-insensitive, as Windows' are."""
    folded = name.casefold()
    return next((where for key, where in resolve.items() if key.casefold() == folded), None)


def resolve_address(name: str, resolve: Mapping[str, str], domain: str | None) -> str:
    """Map a node name to where to connect: ``--resolve`` first, then ``--cluster-domain``."""
    mapped = resolved(name, resolve)
    if mapped is not None:
        return mapped
    if domain and "." not in name:
        return f"{name}.{domain}"
    return name


def cluster_targets(
    seed: HostTarget, names: Iterable[str], resolve: Mapping[str, str], domain: str | None
) -> list[HostTarget]:
    """The discovered nodes as targets. Cluster nodes share their listener configuration, so a
    node that ``resolve`` does not map is reached like the seed: same scheme, port and path."""
    seed_url = urlsplit(endpoint_url(seed.address, seed.options))
    targets = []
    for name in names:
        mapped = resolved(name, resolve)
        if mapped is None:
            host = resolve_address(name, {}, domain)
            netloc = f"[{host}]" if ":" in host else host
            if seed_url.port is not None:
                netloc += f":{seed_url.port}"
            mapped = urlunsplit((seed_url.scheme, netloc, seed_url.path, "", ""))
        targets.append(HostTarget(name, mapped, seed.options))
    return targets


def on_job_node(
    command: str,
    targets: list[HostTarget],
    job_id: str,
    operation: Operation,
    *,
    missing_ok: bool = False,
    concurrency: int = 32,
    processes: int | None = None,
    client_options: Mapping[str, Any] | None = None,
    record_dir: str | None = None,
    on_result: Callable[[OperationResult], None] | None = None,
    cancel: threading.Event | None = None,
) -> FanoutReport:
    """Run a job operation once, on the cluster node that has the job.

    Every node reads the job first; the first node (in order) that has it runs ``operation``; the
    others report that the job is not there, or that they see it too and it was handled on that
    node (ok, unchanged). When no node has it, every node reports it not found: an error unless
    ``missing_ok``. Interrupted while reading, nothing is run.
    """
    probe = run(
        "show",
        targets,
        lambda c: c.show(job_id),
        concurrency=concurrency,
        processes=processes,
        client_options=client_options,
        record_dir=record_dir,
        cancel=cancel,
    )
    owners = [r.host for r in probe.results if r.ok]
    owner = owners[0] if owners and not probe.interrupted else None
    by_name = {t.name: t for t in targets}
    acted: list[OperationResult] = []
    interrupted, forced, recordings = probe.interrupted, probe.forced, list(probe.recordings)
    if owner is not None:
        done = run(
            command,
            [by_name[owner]],
            operation,
            concurrency=1,
            processes=1,
            client_options=client_options,
            record_dir=record_dir,
            cancel=cancel,
        )
        acted, interrupted, forced = done.results, done.interrupted, done.forced
        recordings += done.recordings
    results: list[OperationResult] = []
    for seen in probe.results:
        if seen.host == owner and acted:
            acted[0].requests = [*seen.requests, *acted[0].requests]  # the probe's Get was sent there too
            acted[0].elapsed_ms += seen.elapsed_ms
            results.append(acted[0])
            continue
        result = OperationResult(seen.host, command, job=job_id, method="Get", changed=False, requests=seen.requests)
        result.found, result.elapsed_ms = seen.found, seen.elapsed_ms  # the time its probe took there
        if owner is None and probe.interrupted:  # nothing was done anywhere, and no node is known to have it
            result.error = Interrupted(f"interrupted before {command} was sent to any node", host=seen.host)
        elif seen.ok:
            result.notes.append(f"the job is visible here too; handled once, on {owner}")
        elif seen.gone and owner is not None:
            result.notes.append(f"the job is not on this node (it is on {owner})")
        elif seen.gone:
            result.gone = True
            if missing_ok:
                result.notes.append("the job is gone (not found on any node)")
            else:
                result.error = seen.error
        else:
            result.error = seen.error
        results.append(result)
    if on_result is not None:
        for result in results:
            on_result(result)
    report = FanoutReport(command, results, interrupted=interrupted, forced=forced, recordings=recordings)
    report.extra["job_found_on"] = owners
    return report


def list_once(report: FanoutReport) -> FanoutReport:
    """A cluster-wide ``list``: each job under the first node that listed it, and only there."""
    seen: dict[str, str] = {}
    for result in report.results:
        if result.jobs is None:
            continue
        kept, dropped = [], 0
        for job in result.jobs:
            job_id = str(job.get("InstanceID"))
            if job_id in seen:
                dropped += 1
                continue
            seen[job_id] = result.host
            kept.append(job)
        result.jobs = kept
        if dropped:
            result.notes.append(f"{dropped} job(s) also visible here are listed under the node that listed them first")
    report.extra["jobs"] = len(seen)
    return report


def stop_selected_once(
    targets: list[HostTarget],
    selection: JobFilter,
    stop_options: Mapping[str, Any],
    *,
    concurrency: int = 32,
    processes: int | None = None,
    client_options: Mapping[str, Any] | None = None,
    record_dir: str | None = None,
    on_result: Callable[[OperationResult], None] | None = None,
    cancel: threading.Event | None = None,
) -> FanoutReport:
    """``stop --all`` on a cluster: select on every node, then stop each job once, on the first
    node that listed it. The per-node results say which jobs each node stopped."""
    listed = run(
        "list",
        targets,
        lambda c: c.list(where=selection),
        concurrency=concurrency,
        processes=processes,
        client_options=client_options,
        record_dir=record_dir,
        cancel=cancel,
    )
    list_once(listed)
    assigned = {r.host: [str(j.get("InstanceID")) for j in r.jobs or []] for r in listed.results if r.ok}
    stopped: dict[str, OperationResult] = {}
    if not listed.interrupted:
        workers = [t for t in targets if assigned.get(t.name)]
        by_address = {t.address: assigned[t.name] for t in workers}  # a client knows its address only
        if len(by_address) != len(workers):
            raise UsageError("two cluster nodes resolve to the same address; give each its own --resolve")
        done = run(
            "stop",
            workers,
            lambda c: c.stop_many(by_address[c.host], **stop_options),
            concurrency=concurrency,
            processes=processes,
            client_options=client_options,
            record_dir=record_dir,
            cancel=cancel,
        )
        stopped = {r.host: r for r in done.results}
        listed.interrupted, listed.forced = done.interrupted, done.forced
        listed.recordings += done.recordings
    results: list[OperationResult] = []
    selected = not listed.interrupted  # else the selection is incomplete and nothing was stopped
    for seen in listed.results:
        if seen.host in stopped:
            result = stopped[seen.host]
            result.requests = [*seen.requests, *result.requests]
        else:
            error = seen.error
            if error is None and not selected:
                error = Interrupted(
                    "interrupted while the cluster's jobs were selected; none was stopped", host=seen.host
                )
            result = OperationResult(seen.host, "stop", method="Enumerate", error=error, requests=seen.requests)
            result.jobs = []
            result.notes = [*seen.notes, "no job selected here"] if error is None else list(seen.notes)
        results.append(result)
    if on_result is not None:
        for result in results:
            on_result(result)
    report = FanoutReport(
        "stop", results, interrupted=listed.interrupted, forced=listed.forced, recordings=listed.recordings
    )
    report.extra["jobs"] = listed.extra.get("jobs", 0)
    return report


def targets_for(
    names: Iterable[str], options: ConnectionOptions, resolve: Mapping[str, str], domain: str | None
) -> list[HostTarget]:
    return [HostTarget(name, resolve_address(name, resolve, domain), options) for name in names]
