"""Run one job operation on many hosts at once, and discover the nodes of a failover cluster.

Concurrency is bounded; every host has its own session (one authenticated keep-alive connection),
so a slow or dead host holds only its own slot, up to its own timeouts. Ctrl-C stops new work, lets
running requests finish or time out, and still returns what finished.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from hvjob.errors import HvjobError, ProtocolError, UsageError
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
    client_options: Mapping[str, Any] | None = None,
    record_dir: str | None = None,
    on_result: Callable[[OperationResult], None] | None = None,
    cancel: threading.Event | None = None,
) -> FanoutReport:
    """Run ``operation`` on every target; one result per target, in the order given."""
    if concurrency < 1:
        raise UsageError("concurrency must be at least 1")
    cancel = cancel or threading.Event()
    results: dict[int, OperationResult] = {}
    recorders: list[FixtureRecorder] = []

    def task(target: HostTarget) -> OperationResult:
        if cancel.is_set():
            raise _Cancelled
        recorder = None
        if record_dir:
            recorder = FixtureRecorder(
                record_dir, f"{command}-{_safe(target.name)}", endpoint=target.address, username=target.options.username
            )
            recorders.append(recorder)
        try:
            with WsmanSession(target.address, target.options, recorder=recorder) as session:
                client = JobClient(session, **dict(client_options or {}))
                result = operation(client)
        except HvjobError as exc:
            result = OperationResult(target.address, command, error=exc)
        except Exception as exc:  # never a traceback for the user; logged for -v
            log.debug("unexpected failure on %s", target.name, exc_info=True)
            result = OperationResult(
                target.address,
                command,
                error=ProtocolError(f"unexpected {type(exc).__name__}: {exc}", host=target.name),
            )
        result.host = target.name
        return result

    interrupted = False
    executor = ThreadPoolExecutor(max_workers=min(concurrency, max(1, len(targets))), thread_name_prefix="hvjob")
    futures: dict[Future[OperationResult], int] = {}
    try:
        for index, target in enumerate(targets):
            futures[executor.submit(task, target)] = index
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                _collect(future, futures[future], results, on_result)
    except KeyboardInterrupt:
        interrupted = True
        cancel.set()
        for future in futures:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)
        for future, index in futures.items():
            if future.done() and not future.cancelled() and index not in results:
                _collect(future, index, results, on_result)
    finally:
        executor.shutdown(wait=True)
        for recorder in recorders:
            try:
                recorder.save()
            except OSError as exc:
                log.warning("cannot write recording: %s", exc)
    ordered = [results[i] for i in sorted(results)]
    return FanoutReport(command, ordered, interrupted=interrupted)


class _Cancelled(Exception):
    pass


def _collect(
    future: Future[OperationResult],
    index: int,
    results: dict[int, OperationResult],
    on_result: Callable[[OperationResult], None] | None,
) -> None:
    try:
        result = future.result()
    except _Cancelled:
        return
    if result.error is not None:
        result.error.drop_tracebacks()  # logged already; a thousand kept tracebacks are not
    results[index] = result
    if on_result is not None:
        on_result(result)


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
