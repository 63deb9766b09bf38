"""Run one job operation on many hosts at once, and discover the nodes of a failover cluster.

Concurrency is bounded; every host has its own session (one authenticated keep-alive connection),
so a slow or dead host holds only its own slot, up to its own timeouts. Ctrl-C stops new work, lets
running requests finish or time out, and still returns what finished.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import pickle
import resource
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import connection as mp_connection
from typing import Any, Protocol, cast

from hvjob.errors import HvjobError, OutcomeUnknown, ProtocolError, UsageError
from hvjob.jobs import JobClient, OperationResult
from hvjob.recorder import FixtureRecorder
from hvjob.transport import ConnectionOptions, WsmanSession
from hvjob.wire import build, ns
from hvjob.wire.parse import EnumerationPage

log = logging.getLogger("hvjob.fanout")


@dataclass(frozen=True)
class HostTarget:
    """A host as the user named it, where to connect, and its connection options."""

    name: str
    address: str
    options: ConnectionOptions


Operation = Callable[[JobClient], OperationResult]


@dataclass
class FanoutReport:
    """Results in host order, and the summary of docs/cli.md."""

    command: str
    results: list[OperationResult]
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    workers: list[WorkerStats] = field(default_factory=list)  # empty when the fan-out ran in threads here

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
        """0 all ok; 3 some host unreachable; 1 some failed; 130 interrupted."""
        if self.interrupted:
            return 130
        statuses = {r.status for r in self.results}
        if "unreachable" in statuses:
            return 3
        if "failed" in statuses:
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
    1: threads in this process only). ``on_result`` is always called in this process.
    """
    if concurrency < 1:
        raise UsageError("concurrency must be at least 1")
    if processes is not None and processes < 1:
        raise UsageError("processes must be at least 1")
    cancel = cancel or threading.Event()
    work = _Work(command, operation, client_options, record_dir)
    indexed = list(enumerate(targets))
    results: dict[int, OperationResult] = {}

    def deliver(index: int, result: OperationResult) -> None:
        results[index] = result
        if on_result is not None:
            on_result(result)

    workers = plan_processes(len(targets), concurrency, processes)
    stats: list[WorkerStats] = []
    if workers > 1:
        interrupted = _run_processes(work, indexed, workers, concurrency, deliver, cancel, stats)
    else:
        interrupted = _run_threads(work, indexed, concurrency, deliver, cancel)
    ordered = [results[i] for i in sorted(results)]
    return FanoutReport(command, ordered, interrupted=interrupted, workers=stats)


@dataclass(frozen=True)
class _Work:
    """What is done on each host; the same in the thread runner and in worker processes."""

    command: str
    operation: Operation
    client_options: Mapping[str, Any] | None
    record_dir: str | None

    def on(self, target: HostTarget, recorders: list[FixtureRecorder]) -> OperationResult:
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
                client = JobClient(session, **dict(self.client_options or {}))
                result = self.operation(client)
        except HvjobError as exc:
            result = OperationResult(target.address, self.command, error=exc)
        except Exception as exc:  # never a traceback for the user; logged for -v
            log.debug("unexpected failure on %s", target.name, exc_info=True)
            result = OperationResult(
                target.address,
                self.command,
                error=ProtocolError(f"unexpected {type(exc).__name__}: {exc}", host=target.name),
            )
        result.host = target.name
        if result.error is not None:
            result.error.drop_tracebacks()  # logged already; a thousand kept tracebacks are not
        return result


class _Cancelled(Exception):
    pass


class _CancelFlag(Protocol):
    def is_set(self) -> bool: ...


def _run_threads(
    work: _Work,
    indexed: list[tuple[int, HostTarget]],
    concurrency: int,
    deliver: Callable[[int, OperationResult], None],
    cancel: _CancelFlag,
) -> bool:
    """Run the hosts in a thread pool; deliver each result as it finishes. True if interrupted."""
    recorders: list[FixtureRecorder] = []

    def task(target: HostTarget) -> OperationResult:
        if cancel.is_set():
            raise _Cancelled
        return work.on(target, recorders)

    interrupted = False
    executor = ThreadPoolExecutor(max_workers=min(concurrency, max(1, len(indexed))), thread_name_prefix="hvjob")
    futures: dict[Future[OperationResult], int] = {}
    delivered: set[int] = set()

    def collect(future: Future[OperationResult]) -> None:
        index = futures[future]
        try:
            result = future.result()
        except _Cancelled:
            return
        delivered.add(index)
        deliver(index, result)

    try:
        for index, target in indexed:
            futures[executor.submit(task, target)] = index
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                collect(future)
    except KeyboardInterrupt:
        interrupted = True
        executor.shutdown(wait=True, cancel_futures=True)  # queued hosts are never started
        for future, index in futures.items():
            if future.done() and not future.cancelled() and index not in delivered:
                collect(future)
    except BaseException:
        # Results can no longer be delivered (say the output pipe closed): start no other host.
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        executor.shutdown(wait=True)
        for recorder in recorders:
            try:
                recorder.save()
            except OSError as exc:
                log.warning("cannot write recording: %s", exc)
    return interrupted


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
    stats: list[WorkerStats],
) -> bool:
    """Fork ``workers`` processes, each running a share of the hosts in its own thread pool.

    Results come back pickled over one pipe per worker. Workers ignore SIGINT: Ctrl-C here sets a
    shared event, so every worker stops starting hosts and lets running ones finish, as threads
    do. A worker that dies leaves its unfinished hosts with an ``outcome_unknown`` error. If a
    worker cannot be started, none starts work and the fan-out runs in threads here instead.
    """
    context = multiprocessing.get_context("fork")
    stop, go = context.Event(), context.Event()
    shares = [indexed[i::workers] for i in range(workers)]
    slots = [concurrency // workers + (1 if i < concurrency % workers else 0) for i in range(workers)]
    delivered: set[int] = set()
    peaks: dict[int, float] = {}
    garbled: set[int] = set()
    with _InterruptsToEvent(stop) as interrupts:
        running = _start_workers(context, work, shares, slots, stop, go)
        if running is not None:
            if cancel.is_set():
                stop.set()
            go.set()
            try:
                _receive(running, deliver, delivered, peaks, garbled, cancel, stop)
            except BaseException:
                stop.set()  # results can no longer be delivered: no worker starts another host
                raise
            finally:
                for process, reader, _ in running:
                    if interrupts.forced and process.is_alive():
                        process.terminate()
                    process.join()
                    reader.close()
    if running is None:
        return _run_threads(work, indexed, concurrency, deliver, cancel)
    for process, _, share in running:
        stats.append(WorkerStats(process.pid, len(share), peaks.get(process.pid), process.exitcode))
        if process.pid in peaks and process.pid not in garbled:
            continue  # it finished: hosts it did not report were cancelled before they started
        if process.pid in garbled:
            why = "its worker process sent a result that could not be read"
        else:
            why = f"its worker process ended unexpectedly (exit code {process.exitcode})"
        for index, target in share:
            if index not in delivered:
                error = OutcomeUnknown(f"{why}; whether the operation ran is unknown", host=target.name)
                deliver(index, OperationResult(target.name, work.command, error=error))
    return interrupts.caught


_Running = list[tuple[Any, Any, list[tuple[int, HostTarget]]]]


def _start_workers(
    context: Any, work: _Work, shares: list[list[tuple[int, HostTarget]]], slots: list[int], stop: Any, go: Any
) -> _Running | None:
    """Fork one worker per share; each waits for ``go``. None, with no host touched, if fork fails."""
    running: _Running = []
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # until workers ignore it
    try:
        for share, slot in zip(shares, slots, strict=True):
            reader, writer = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker,
                args=(writer, work, share, slot, stop, go, os.getpid()),
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
            process.join()
            reader.close()
        return None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    log.debug("fan-out over %d worker processes: %s", len(running), [p.pid for p, _, _ in running])
    return running


def _receive(
    running: _Running,
    deliver: Callable[[int, OperationResult], None],
    delivered: set[int],
    peaks: dict[int, float],
    garbled: set[int],
    cancel: threading.Event,
    stop: Any,
) -> None:
    """Deliver results as workers send them, until every worker has closed its pipe."""
    open_readers: dict[Any, int] = {reader: process.pid for process, reader, _ in running}
    while open_readers:
        if cancel.is_set():
            stop.set()
        for ready in mp_connection.wait(list(open_readers), timeout=0.2):
            try:
                message: tuple[Any, ...] = cast(Any, ready).recv()
            except (EOFError, OSError):  # the worker has exited
                del open_readers[ready]
                continue
            except Exception:  # a message that does not unpickle: its host is reported lost
                log.debug("unreadable result from worker %s", open_readers[ready], exc_info=True)
                garbled.add(open_readers[ready])
                continue
            if message[0] == "result":
                delivered.add(message[1])
                deliver(message[1], message[2])
            else:  # ("done", peak RSS in MB)
                peaks[open_readers[ready]] = message[1]


class _InterruptsToEvent:
    """While active (main thread only): the first Ctrl-C sets ``event``; a second one raises."""

    def __init__(self, event: Any) -> None:
        self.event = event
        self.caught = False
        self.forced = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.caught:
            self.forced = True
            raise KeyboardInterrupt
        self.caught = True
        self.event.set()

    def __enter__(self) -> _InterruptsToEvent:
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
    go: Any,
    parent: int,
) -> None:
    """A forked worker: run ``share`` in threads, send each result, then ``("done", peak RSS MB)``."""
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
            writer.send(("result", index, OperationResult(result.host, work.command, error=error)))

    try:
        while not go.wait(0.5):
            if halt.parent_gone():
                return
        _run_threads(work, share, concurrency, send, halt)
        writer.send(("done", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    except Exception:  # the parent reports this worker's unfinished hosts; no traceback here
        log.debug("fan-out worker failed", exc_info=True)
    finally:
        writer.close()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# --- cluster -------------------------------------------------------------------------------------


def discover_cluster_nodes(target: HostTarget) -> list[str]:
    """Names of the failover cluster nodes, from ``MSCluster_Node`` in ``root/MSCluster``."""
    uri = ns.wmi_namespace_uri("root/MSCluster")
    names: list[str] = []
    with WsmanSession(target.address, target.options) as session:
        page = session.send(build.build_enumerate(session.header_options, uri, wql="SELECT * FROM MSCluster_Node"))
        while True:
            if not isinstance(page, EnumerationPage):
                raise ProtocolError("cluster node enumeration returned no page", host=target.name)
            names.extend(str(item.get("Name")) for item in page.items if item.get("Name"))
            if page.end_of_sequence or not page.context:
                break
            page = session.send(build.build_pull(session.header_options, uri, page.context))
    if not names:
        raise ProtocolError("the cluster reported no nodes", host=target.name)
    return names


def resolve_address(name: str, resolve: Mapping[str, str], domain: str | None) -> str:
    """Map a node name to where to connect: ``--resolve`` first, then ``--cluster-domain``."""
    for key in (name, name.lower(), name.upper()):
        if key in resolve:
            return resolve[key]
    if domain and "." not in name:
        return f"{name}.{domain}"
    return name


def dedupe_mutation(
    command: str,
    targets: list[HostTarget],
    job_id: str,
    mutate: Operation,
    *,
    concurrency: int,
    client_options: Mapping[str, Any] | None = None,
    missing_ok: bool,
    processes: int | None = None,
    record_dir: str | None = None,
    on_result: Callable[[OperationResult], None] | None = None,
) -> FanoutReport:
    """Invoke a mutating method once per InstanceID, even when several cluster nodes can see it.

    Every node reads the job first; the first node (in order) that has it performs the mutation;
    the others report unchanged with a note. Interrupted while reading, nothing is mutated.
    """
    probe = run(
        "show",
        targets,
        lambda c: c.show(job_id),
        concurrency=concurrency,
        processes=processes,
        client_options=client_options,
        record_dir=record_dir,
    )
    owners = [r.host for r in probe.results if r.ok]
    owner = owners[0] if owners and not probe.interrupted else None
    by_name = {t.name: t for t in targets}
    results: list[OperationResult] = []
    acted: list[OperationResult] = []
    interrupted = probe.interrupted
    if owner is not None:
        done = run(
            command, [by_name[owner]], mutate, concurrency=1, client_options=client_options, record_dir=record_dir
        )
        acted, interrupted = done.results, done.interrupted
    for seen in probe.results:
        if seen.host == owner and acted:
            results.append(acted[0])
            continue
        result = OperationResult(seen.host, command, job=job_id, method="Get", changed=False)
        if seen.ok:
            result.notes.append(f"same job also visible here; acted once, on {owner}")
        elif seen.gone:
            result.gone = True
            if not missing_ok:
                result.error = seen.error
        else:
            result.error = seen.error
        results.append(result)
    if on_result is not None:
        for result in results:
            on_result(result)
    report = FanoutReport(command, results, interrupted=interrupted)
    report.extra["job_found_on"] = owners
    return report


def targets_for(
    names: Iterable[str], options: ConnectionOptions, resolve: Mapping[str, str], domain: str | None
) -> list[HostTarget]:
    return [HostTarget(name, resolve_address(name, resolve, domain), options) for name in names]
