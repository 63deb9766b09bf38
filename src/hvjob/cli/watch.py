"""``hvjob watch``: the jobs of some hosts (or a whole cluster), live; and the progress of a wait.

On a terminal, a full-screen view refreshed every few seconds: one row per job with a progress
bar, rows that changed since the last refresh highlighted, finished jobs dimmed, a failed job's
error under it. Off a terminal, one JSON line per change (a job appears, changes state, finishes
or vanishes; a host starts or stops failing), so that another program can follow the stream, as
``kubectl get -w`` prints changes. Each refresh is one fan-out ``list`` with the usual bounded
concurrency; with ``--cluster`` each job once (docs/cli.md).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from hvjob.fanout import FanoutReport
from hvjob.jobs import TERMINAL_STATES, Job, JobState, state_label

#: Exit codes as ``wait`` defines them (docs/cli.md).
EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_WAIT_TIMEOUT, EXIT_INTERRUPTED = 0, 1, 3, 4, 130


@dataclass(frozen=True)
class Row:
    """One job as the last refresh saw it."""

    node: str
    job: str
    class_name: str
    name: str
    state: int | None
    percent: int | None
    elapsed: float | None
    owner: str
    error: str

    @classmethod
    def of(cls, node: str, props: dict[str, Any]) -> Row:
        code, text = props.get("ErrorCode"), props.get("ErrorDescription") or props.get("ErrorSummaryDescription")
        error = ""
        if props.get("JobState") == JobState.EXCEPTION or (code not in (None, 0)) or text:
            error = f"ErrorCode {code}" + (f": {text}" if text else "")
        elapsed = props.get("ElapsedTime")
        return cls(
            node=node,
            job=str(props.get("InstanceID") or ""),
            class_name=str(props.get("CreationClassName") or props.get("__class") or ""),
            name=str(props.get("Name") or props.get("ElementName") or props.get("CollectionId") or ""),
            state=props.get("JobState") if isinstance(props.get("JobState"), int) else None,
            percent=props.get("PercentComplete") if isinstance(props.get("PercentComplete"), int) else None,
            elapsed=float(elapsed) if isinstance(elapsed, (int, float)) else None,
            owner=str(props.get("Owner") or ""),
            error=error,
            error_code=code if isinstance(code, int) else None,
        )

    @property
    def finished(self) -> bool:
        return self.state is not None and self.state in TERMINAL_STATES

    error_code: int | None = None

    @property
    def succeeded(self) -> bool:
        """As ``Job.succeeded``: Completed (with Warnings) and ErrorCode 0."""
        return self.state in (JobState.COMPLETED, JobState.COMPLETED_WITH_WARNINGS) and (self.error_code or 0) == 0


@dataclass
class Snapshot:
    """What one refresh saw: the jobs by id, and the hosts that failed to answer."""

    when: dt.datetime
    rows: dict[str, Row] = field(default_factory=dict)
    host_errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, report: FanoutReport, options: WatchOptions, tracked: Iterable[str] = ()) -> Snapshot:
        """The jobs the watch follows: those asked for (``--job``), those in the states asked for,
        and any it already follows (a job that finishes leaves ``--state Running``, not the view)."""
        snapshot = cls(dt.datetime.now(dt.timezone.utc))
        following = set(tracked)
        for result in report.results:
            if result.error is not None:
                snapshot.host_errors[result.host] = f"{result.error.type}: {result.error.message}"
                continue
            for props in result.jobs or []:
                row = Row.of(result.host, {"__class": options.class_name, **props})
                if options.jobs is not None and row.job not in options.jobs:
                    continue
                if options.states and row.state not in options.states and row.job not in following:
                    continue
                snapshot.rows.setdefault(row.job, row)
        return snapshot


def changes(before: Snapshot | None, after: Snapshot) -> list[dict[str, Any]]:
    """The events between two refreshes, as the JSON lines of the off-terminal stream."""
    events: list[dict[str, Any]] = []
    old_rows = before.rows if before else {}
    stamp = after.when.isoformat()
    for job, row in after.rows.items():
        previous = old_rows.get(job)
        if previous is None:
            kind = "appeared"
        elif previous.state != row.state:
            kind = "finished" if row.finished else "changed"
        else:
            continue
        events.append(_event(stamp, kind, row, previous))
    for job, row in old_rows.items():
        if job not in after.rows and row.node not in after.host_errors:
            events.append(_event(stamp, "vanished", row, row))
    old_errors = before.host_errors if before else {}
    for host, error in after.host_errors.items():
        if old_errors.get(host) != error:
            events.append({**_no_job(stamp, "host_failed", host), "error": error})
    for host in old_errors:
        if host not in after.host_errors:
            events.append(_no_job(stamp, "host_answered", host))
    return events


def _no_job(stamp: str, kind: str, host: str) -> dict[str, Any]:
    """A host's event, with the same keys as a job's."""
    keys = ("job", "state", "job_state", "percent", "previous_state", "error")
    return {"time": stamp, "event": kind, "node": host, **dict.fromkeys(keys)}


def _event(stamp: str, kind: str, row: Row, previous: Row | None) -> dict[str, Any]:
    """One line of the stream: every key always there (null when it does not apply)."""
    return {
        "time": stamp,
        "event": kind,
        "node": row.node,
        "job": row.job,
        "state": state_label(row.state),
        "job_state": row.state,
        "percent": row.percent,
        "previous_state": state_label(previous.state) if previous is not None and previous is not row else None,
        "error": row.error or None,
    }


# --- the loop ------------------------------------------------------------------------------------


@dataclass
class WatchOptions:
    interval: float = 2.0
    until_done: bool = False
    timeout: float | None = None
    require_success: bool = False
    jobs: set[str] | None = None  # --job: only these
    states: frozenset[int] = frozenset()  # --state: the jobs to start following (then followed to the end)
    title: str = ""
    class_name: str = ""


def watch(poll: Callable[[frozenset[str]], FanoutReport], options: WatchOptions) -> int:
    """Refresh until Ctrl-C, or with ``until_done`` until every job is finished; the exit code.

    ``poll(skip)`` lists the jobs of every host but those in ``skip``: a host whose credentials
    were rejected is not asked again (each retry would count towards locking the account out)."""
    live = sys.stdout.isatty()
    view = _LiveView(options) if live else None
    started = time.monotonic()
    previous: Snapshot | None = None
    snapshot: Snapshot | None = None
    last: dict[str, Row] = {}  # every job followed, as last seen (a vanished job's final state)
    given_up: dict[str, str] = {}  # host -> why it is no longer polled
    state = _Progress()
    outcome = _Outcome(EXIT_INTERRUPTED, "interrupted")
    try:
        if view is not None:
            view.start()
        while True:
            report = poll(frozenset(given_up))
            if report.forced:  # a second Ctrl-C: do not wait for the requests on the wire
                if view is not None:
                    view.stop()
                sys.stdout.flush()
                os._exit(EXIT_INTERRUPTED)
            if report.interrupted:  # Ctrl-C during a refresh: the fan-out caught it
                break
            for result in report.results:
                if result.error is not None and result.error.type == "authentication":
                    given_up[result.host] = (
                        f"{result.error.type}: {result.error.message} (not polled again: each attempt "
                        "counts towards locking the account out)"
                    )
            snapshot = Snapshot.of(report, options, last)
            snapshot.host_errors.update(given_up)
            last.update(snapshot.rows)
            if view is not None:
                view.show(snapshot, previous)
            else:
                for event in changes(previous, snapshot):
                    click.echo(json.dumps(event))
                sys.stdout.flush()
            nothing_left = all(result.host in given_up for result in report.results)
            done = _finished(snapshot, last, options, state, set(given_up), nothing_left)
            if done is not None:
                outcome = done
                break
            if options.timeout is not None and time.monotonic() - started >= options.timeout:
                outcome = _Outcome(EXIT_WAIT_TIMEOUT, f"--timeout {options.timeout:g}s passed first")
                break
            previous = snapshot
            time.sleep(options.interval)
    except KeyboardInterrupt:
        pass
    finally:
        if view is not None:
            view.stop()  # the alternate screen goes; what it showed last stays on the normal one
            if snapshot is not None:
                view.console.print(view.render(snapshot, None, footer=False))
    if outcome.message:
        click.echo(f"hvjob: {outcome.message}", err=True)
    return outcome.code


@dataclass(frozen=True)
class _Outcome:
    """How the watch ended: its exit code, and what to say on stderr once the live view is gone."""

    code: int
    message: str = ""


@dataclass
class _Progress:
    """What --until-done has established so far."""

    checked_missing: bool = False  # the --job ids were looked for on a refresh where every host answered


def _finished(
    snapshot: Snapshot,
    last: dict[str, Row],
    options: WatchOptions,
    progress: _Progress,
    given_up: set[str],
    nothing_left: bool,
) -> _Outcome | None:
    """Whether the watch is over: with --until-done once every watched job is finished (or gone);
    in any case once no host is left to poll. None to keep watching."""
    rejected = f"{', '.join(sorted(given_up))} rejected the credentials"
    if nothing_left:
        return _Outcome(EXIT_UNREACHABLE, f"no host left to watch: {rejected}")
    if not options.until_done:
        return None
    if options.jobs:
        unseen = options.jobs - set(last)
        if unseen and not snapshot.host_errors and not progress.checked_missing:
            # Every host answered and one of the jobs asked for is on none: not found, as for wait.
            return _Outcome(EXIT_FAILED, f"error: job(s) not found: {', '.join(sorted(unseen))}")
        progress.checked_missing = progress.checked_missing or not snapshot.host_errors
        if unseen:
            if set(snapshot.host_errors) <= given_up:
                return _Outcome(
                    EXIT_UNREACHABLE, f"job(s) {', '.join(sorted(unseen))} on no host that answers; {rejected}"
                )
            return None  # it may be on a host that does not answer yet
        followed = [last[job] for job in sorted(options.jobs)]
        lost = sorted(row.job for row in followed if not row.finished and row.node in given_up)
        if lost:
            return _Outcome(EXIT_UNREACHABLE, f"the state of {', '.join(lost)} is unknown: {rejected}")
        # The jobs asked for: each seen finished, or gone since (its node answered without it); what
        # other hosts say does not matter.
        if not all(row.finished or _gone(row, snapshot) for row in followed):
            return None
    else:
        if not all(row.finished for row in snapshot.rows.values()):
            return None
        if not set(snapshot.host_errors) <= given_up:
            return None  # a host that does not answer may still have a job running
        if given_up:
            return _Outcome(EXIT_UNREACHABLE, f"every job seen is finished; {rejected}: its jobs are unknown")
        if not last:
            return None
        followed = list(last.values())
    # A job that vanished before it was seen finish has no known outcome: not a success.
    if options.require_success and not all(row.finished and row.succeeded for row in followed):
        failed = sorted(row.job for row in followed if not (row.finished and row.succeeded))
        return _Outcome(EXIT_FAILED, f"not every job succeeded: {', '.join(failed)}")
    return _Outcome(EXIT_OK, "every job watched is finished")


def _gone(row: Row, snapshot: Snapshot) -> bool:
    """The job is no longer listed by a node that answered (not merely on one that did not)."""
    return row.job not in snapshot.rows and row.node not in snapshot.host_errors


# --- on a terminal -------------------------------------------------------------------------------


class _LiveView:
    """The full-screen table, drawn by rich's Live on the alternate screen."""

    def __init__(self, options: WatchOptions) -> None:
        from rich.console import Console
        from rich.live import Live

        self.options = options
        self.console = Console()
        self.live = Live(console=self.console, screen=True, auto_refresh=False, transient=True)

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.live.stop()

    def show(self, snapshot: Snapshot, previous: Snapshot | None) -> None:
        self.live.update(self.render(snapshot, previous), refresh=True)

    def render(self, snapshot: Snapshot, previous: Snapshot | None, footer: bool = True) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        rows = sorted(snapshot.rows.values(), key=lambda r: (r.finished, r.node, r.job))
        running = sum(1 for r in rows if not r.finished)
        when = snapshot.when.astimezone().strftime("%H:%M:%S")
        classes = {r.class_name.removeprefix("Msvm_") for r in rows}
        of_class = f" of {next(iter(classes))}" if len(classes) == 1 else ""  # else a CLASS column says
        header = Text(
            f"hvjob watch {self.options.title}   every {self.options.interval:g}s   {when}   "
            f"{len(rows)} job(s){of_class}, {running} running",
            style="bold",
        )
        shown = _columns(rows, self.console.width)
        table = Table(expand=True, header_style="bold", box=None, padding=(0, 1))
        for column in shown.values():
            table.add_column(column.heading or column.title, **column.layout)
        old = previous.rows if previous else {}
        for row in rows:
            before = old.get(row.job)
            changed = before is not None and (before.state != row.state or before.percent != row.percent)
            style = "dim" if row.finished else ("bold reverse" if changed else "")
            if row.finished and changed:
                style = "bold"  # the refresh it finished in, still highlighted
            percent = row.percent if row.percent is not None else 0
            if "PROGRESS" in shown and shown["PROGRESS"].width > _PERCENT_ONLY:
                progress: Any = Table.grid(padding=(0, 1))
                progress.add_row(ProgressBar(total=100, completed=percent, width=20), Text(f"{percent:>3}%"))
            else:
                progress = Text(f"{percent:>3}%")
            cells = {
                "NODE": Text(row.node),
                "JOB": Text(row.job),
                "CLASS": Text(row.class_name.removeprefix("Msvm_")),
                "NAME / VM GROUP": _name_cell(row),
                "STATE": Text(state_label(row.state) or "?", style="red" if row.error else ""),
                "PROGRESS": progress,
                "ELAPSED": Text(_elapsed(row.elapsed)),
                "OWNER": Text(row.owner),
            }
            table.add_row(*(cells[title] for title in shown), style=style)
        parts: list[Any] = [header]
        for host, error in sorted(snapshot.host_errors.items()):
            parts.append(Text(f"{host}: {error}", style="red"))
        parts.append(table)
        if footer:
            until = "; exits when every job is finished" if self.options.until_done else ""
            parts.append(Text(f"Ctrl-C to quit{until}", style="dim"))
        return Group(*parts)


_PERCENT_ONLY = 4  # a PROGRESS column this narrow shows the percentage without the bar


@dataclass(frozen=True)
class _Column:
    title: str  # its key, and its heading unless ``heading`` says otherwise
    width: int  # what it takes, padding aside
    layout: dict[str, Any]
    heading: str | None = None


def _columns(rows: Sequence[Row], width: int) -> dict[str, _Column]:
    """The columns that fit ``width``, in display order. Node, job and state always (what a person
    acts on is never cut); then progress, elapsed time, owner and name as room allows (the name
    first when a job has failed: its error is written under the name); the class only when the
    jobs are of several (else the heading names it)."""
    node = max([4, *(len(r.node) for r in rows)])
    job = min(40, max([3, *(len(r.job) for r in rows)]))
    state = min(23, max([5, *(len(state_label(r.state) or "?") for r in rows)]))
    owner = min(24, max([5, *(len(r.owner) for r in rows)]))
    classes = {r.class_name.removeprefix("Msvm_") for r in rows}
    fixed = {"no_wrap": True}
    candidates = [  # by priority
        _Column("NODE", node, {**fixed, "min_width": node, "max_width": node}),
        _Column("JOB", job, {**fixed, "min_width": job, "max_width": job}),
        _Column("STATE", state, {**fixed, "min_width": state, "overflow": "ellipsis"}),
        _Column("PROGRESS", 25, {**fixed, "width": 25}),
        _Column("ELAPSED", 9, {**fixed, "width": 9}),
        _Column("OWNER", owner, {**fixed, "min_width": owner, "overflow": "ellipsis"}),
        _Column("NAME / VM GROUP", 16, {"ratio": 1, "min_width": 16, "overflow": "fold"}),  # errors wrap here
    ]
    if any(r.error for r in rows):  # a failed job's error is written in the name's cell: keep it in view
        candidates.insert(3, candidates.pop())
    if len(classes) > 1:
        longest = max(len(c) for c in classes)
        candidates.append(_Column("CLASS", longest, {**fixed, "min_width": min(longest, 20), "overflow": "ellipsis"}))
    chosen: dict[str, _Column] = {}
    used = 0
    for candidate in candidates:
        column = candidate
        if column.title == "PROGRESS" and used + column.width + 2 > width:
            column = _Column("PROGRESS", _PERCENT_ONLY, {**fixed, "width": _PERCENT_ONLY}, heading="%")
        if len(chosen) < 3 or used + column.width + 2 <= width:
            chosen[column.title] = column
            used += column.width + 2
    order = ["NODE", "JOB", "CLASS", "NAME / VM GROUP", "STATE", "PROGRESS", "ELAPSED", "OWNER"]
    return {title: chosen[title] for title in order if title in chosen}


def _name_cell(row: Row) -> Any:
    """The job's name, and under it, for a failed job, its error (inline, in red)."""
    from rich.text import Text

    cell = Text(row.name)
    if row.error:
        cell.append(f"\nerror: {row.error}", style="red")
    return cell


def _elapsed(seconds: float | None) -> str:
    from hvjob.cli.output import duration

    return "" if seconds is None else duration(seconds)


# --- the progress of wait and stop --wait ------------------------------------------------------


class WaitProgress:
    """Bars on stderr for the jobs a wait polls (host: job), fed by ``JobClient.on_poll``."""

    def __init__(self, names: dict[str, str] | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.names = names or {}  # address -> the host's name as the user gave it

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[state]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> WaitProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, host: str, job: Job) -> None:
        key = (host, job.instance_id)
        with self._lock:
            if key not in self._tasks:
                name = self.names.get(host, host)
                self._tasks[key] = self.progress.add_task(f"{name}: {job.instance_id}", total=100, state="")
            task = self._tasks[key]
        percent = 100 if job.succeeded else (job.percent_complete or 0)
        self.progress.update(task, completed=percent, state=job.state_label or "?")


def interval_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--interval",
        type=click.FloatRange(min=0.2),
        default=2.0,
        show_default=True,
        help="Seconds between refreshes.",
    )(fn)


def wanted_jobs(job_ids: Iterable[str]) -> set[str] | None:
    ids = {j for j in job_ids if j}
    return ids or None
