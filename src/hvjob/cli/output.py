"""What the ``hvjob`` commands print: JSON and JSON lines for programs, tables for people.

JSON is the contract (docs/cli.md); text is for reading. Tables come from ``rich`` (aligned
columns, a header, colour on a terminal only); off a terminal no line is wrapped or cut, so
``grep`` still works. Hints for common mistakes go to standard error in every output mode.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click

from hvjob.errors import HvjobError, MethodFailed
from hvjob.fanout import FanoutReport, HostTarget
from hvjob.jobs import OperationResult, PlannedRequest, state_label
from hvjob.transport import endpoint_url

#: The properties ``show`` and ``wait`` print by default (``-v``: every property).
USEFUL_PROPERTIES = (
    "JobState",
    "PercentComplete",
    "Name",
    "ElementName",
    "Owner",
    "StartTime",
    "ElapsedTime",
    "Cancellable",
    "JobStatus",
    "CollectionId",
    "ExportDirectory",
)
ERROR_PROPERTIES = ("ErrorCode", "ErrorDescription", "ErrorSummaryDescription")


SortKey = Callable[[str, dict[str, Any]], Any]


def emit(
    report: FanoutReport,
    *,
    output: str,
    verbose: int,
    streamed: bool = False,
    sort: SortKey | None = None,
    hosts: Mapping[str, HostSetting] | None = None,
) -> None:
    """Print ``report`` as ``output`` asks (json, jsonl, text); ``streamed``: jsonl lines already out;
    ``sort``: the order of the jobs table (node, job -> key); ``hosts``: how each was reached (hints)."""
    if output == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    elif output == "jsonl":
        if not streamed:
            for result in report.results:
                click.echo(json.dumps(result.to_dict()))
        click.echo(json.dumps({"summary": report.summary}))
    else:
        click.echo(render_text(report, verbose=verbose, sort=sort))
    for hint in hints(report, hosts):
        click.echo(f"hvjob: hint: {hint}", err=True)


# --- text ----------------------------------------------------------------------------------------


def render_text(report: FanoutReport, *, verbose: int = 0, sort: SortKey | None = None) -> str:
    """The results table, then what the command read (jobs, properties, errors), then the summary."""
    parts = [_results_table(report, verbose)]
    for result in report.results:
        if result.command == "list" and result.jobs:
            continue  # all nodes' jobs go in one table below
        block = _details(result, verbose)
        if block:
            parts.append(block)
    listed = [(r.host, job) for r in report.results if r.command == "list" for job in r.jobs or []]
    if sort is not None:
        listed.sort(key=lambda pair: sort(*pair))
    if listed:
        parts.append(_jobs_table(listed))
    parts.append(_summary_line(report))
    return "\n\n".join(p for p in parts if p)


def _results_table(report: FanoutReport, verbose: int) -> str:
    headers = ["HOST", "STATUS", "CHANGED", "CALL", "JOB STATE", "DETAIL"]
    rows = []
    for r in report.results:
        changed = "would" if r.would_change else {True: "yes", False: "no", None: "unknown"}[r.changed]
        call = _call(r.method, r.return_value, r.return_name)
        rows.append([r.host, r.status, changed, call, state_label(r.job_state_value) or "", _detail(r, verbose)])
    return table(headers, rows)


def _call(method: Any, return_value: Any, return_name: Any) -> str:
    """``RequestStateChange returned 0 (Completed)``: what the method answered, labelled as such."""
    if return_value is None:
        return str(method or "")
    return f"{method} returned {return_value} ({return_name})"


#: The library's option names in its messages, and the flags that set them here.
_FLAGS = {
    "allow_unencrypted": "--allow-unencrypted",
    "ca_trust_path": "--ca-trust",
    "cert_pem": "--cert-pem",
    "cert_key_pem": "--cert-key-pem",
    "message_encryption": "--message-encryption",
    "insecure": "--insecure",
    "connect_timeout": "--connect-timeout",
    "operation_timeout": "--operation-timeout",
    "spn_hostname": "--spn-hostname",
    "set username": "set -u",
    "the force option": "--force",
}
_FLAG_WORDS = re.compile(r"\b(" + "|".join(re.escape(name) for name in _FLAGS) + r")\b")


def in_cli_words(message: str) -> str:
    """A library message that names its options (``allow_unencrypted``), as the flags of this CLI."""
    return _FLAG_WORDS.sub(lambda match: _FLAGS[match.group(1)], message)


def _detail(r: OperationResult, verbose: int) -> str:
    if r.error is not None:
        text = f"{r.error.type}: {in_cli_words(r.error.message)}"
        if r.gone and r.error.type == "wsman_fault" and "not found" not in r.error.message:
            text = f"job not found ({text})"
        if r.error.type == "interrupted" and r.requests and "sent:" not in r.error.message:
            text += "; sent before: " + _requests(r)
        return text
    notes = "; ".join(r.notes)
    if r.command == "list":
        return f"{len(r.jobs or [])} job(s)" + (f"; {notes}" if notes else "")
    if r.command == "errors":
        return "; ".join(str(e.get("Message")) for e in r.errors or []) or "no errors"
    if r.command == "identify" and r.identity:
        return str(r.identity.get("product_version"))
    if verbose and r.requests:
        notes = "; ".join(filter(None, [notes, "sent: " + _requests(r)]))
    return notes


def _requests(r: OperationResult) -> str:
    return ", ".join(
        f"{q.request} ({q.outcome}{'' if q.return_value is None else f', {q.return_value}'})" for q in r.requests
    )


def _details(r: OperationResult, verbose: int) -> str:
    """A block of properties for the commands that read one job (show, wait); the jobs that
    ``stop --all`` touched, one line each."""
    if r.command == "stop" and r.jobs:
        rows = [
            [
                str(j.get("job") or ""),
                "would" if j.get("would_change") else {True: "yes", False: "no", None: "unknown"}[j.get("changed")],
                _call(j.get("method"), j.get("return_value"), j.get("return_name")),
                str(j.get("job_state") or ""),
                (
                    f"{j['error']['type']}: {in_cli_words(j['error']['message'])}"
                    if j.get("error")
                    else "; ".join(j.get("notes", []))
                ),
            ]
            for j in r.jobs
        ]
        return f"{r.host}: jobs selected\n" + table(["JOB", "CHANGED", "CALL", "JOB STATE", "DETAIL"], rows, indent=2)
    if r.command not in ("show", "wait") or not r.properties:
        return ""
    props = r.properties
    names: Iterable[str] = sorted(props) if verbose else USEFUL_PROPERTIES
    rows = []
    for name in names:
        if name in props and props[name] is not None:
            rows.append([name, _show_value(name, props[name])])
    if not verbose and (props.get("ErrorCode") or props.get("ErrorDescription")):
        rows += [[name, _show_value(name, props[name])] for name in ERROR_PROPERTIES if props.get(name) is not None]
    if r.command == "wait" and r.succeeded is not None:
        rows.append(["(succeeded)", "yes" if r.succeeded else "no"])
    title = f"{r.host}: job {r.job}"
    return title + "\n" + table(["PROPERTY", "VALUE"], rows, indent=2)


def _show_value(name: str, value: Any) -> str:
    if name == "JobState":
        return f"{state_label(value)} ({value})"
    if name in ("ElapsedTime", "TimeBeforeRemoval") and isinstance(value, (int, float)):
        return duration(value)
    if name in ("StartTime", "TimeSubmitted", "TimeOfLastStateChange", "InstallDate", "UntilTime"):
        return when(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _jobs_table(listed: Sequence[tuple[str, dict[str, Any]]]) -> str:
    headers = ["NODE", "JOB", "STATE", "PERCENT", "STARTED", "ELAPSED", "OWNER", "NAME"]
    rows = []
    for node, job in listed:
        percent = job.get("PercentComplete")
        elapsed = job.get("ElapsedTime")
        rows.append(
            [
                node,
                str(job.get("InstanceID") or ""),
                state_label(job.get("JobState")) or "",
                "" if percent is None else f"{percent}%",
                when(job.get("StartTime")),
                duration(elapsed) if isinstance(elapsed, (int, float)) else "",
                str(job.get("Owner") or ""),
                str(job.get("Name") or job.get("ElementName") or ""),
            ]
        )
    return table(headers, rows)


def _summary_line(report: FanoutReport) -> str:
    summary = report.summary
    text = f"ok={summary['ok']} failed={summary['failed']} unreachable={summary['unreachable']}"
    if "jobs" in summary:
        text += f" jobs={summary['jobs']}"
    if "job_found_on" in summary:
        text += f" job_found_on={','.join(summary['job_found_on']) or 'none'}"
    if report.interrupted:
        text += " (interrupted)"
    return text


def when(iso: Any) -> str:
    """An ISO 8601 datetime as ``2026-11-25 03:02:11Z`` (UTC, whole seconds) for a table."""
    if not isinstance(iso, str) or not iso:
        return ""
    try:
        moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def duration(seconds: float) -> str:
    """``12.5`` -> ``12.5s``; ``252.5`` -> ``4m12s``; ``7200`` -> ``2h0m0s``: tenths below a minute
    only, so that a column of ages reads alike."""
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"
    hours, rest = divmod(max(60, int(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, indent: int = 0) -> str:
    """An aligned table with a header row, rendered by rich; lines never wrapped, trailing blanks cut."""
    from rich.console import Console
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    for header in headers:
        grid.add_column(header, no_wrap=True, overflow="ignore")
    for row in rows:
        grid.add_row(*(Text(str(cell)) for cell in row))  # Text: data is never read as markup
    buffer = io.StringIO()
    terminal = sys.stdout.isatty()
    console = Console(file=buffer, force_terminal=terminal, width=100_000, highlight=False, soft_wrap=False)
    console.print(Padding(grid, (0, 0, 0, indent)) if indent else grid)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


# --- hints ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostSetting:
    """What a hint needs to know of how a host was reached."""

    url: str
    transport: str
    message_encryption: str
    given: str  # the host as the user named it (a URL, or a name that --scheme and --port complete)

    @property
    def plain_http(self) -> bool:
        return self.url.startswith("http://")


def host_settings(targets: Iterable[HostTarget]) -> dict[str, HostSetting]:
    settings = {}
    for target in targets:
        url = endpoint_url(target.address, target.options)
        settings[target.name] = HostSetting(
            url, target.options.transport, target.options.message_encryption, target.name
        )
    return settings


def _hint_for(error: HvjobError, setting: HostSetting | None) -> str | None:
    """The hint for one failed host's error, knowing (where it can) how the host was reached."""
    message, kind = error.message, error.type
    plain = setting is not None and setting.plain_http
    as_url = setting is not None and "://" in setting.given
    if kind == "tls" and re.search(r"WRONG_VERSION_NUMBER|wrong version number|record layer failure", message, re.I):
        if as_url:
            return "is this an HTTP listener? write http:// in the URL (WinRM's HTTP port is 5985)"
        return "is this an HTTP listener? try --scheme http (WinRM's HTTP port is 5985)"
    if kind == "tls" and re.search(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed", message, re.I):
        return "the server's certificate is not trusted: give its CA with --ca-trust"
    if kind == "connection" and re.search(r"refused", message, re.I):
        return "nothing accepts connections there: check the host and port (--port; 5986 HTTPS, 5985 HTTP)"
    if kind == "connection" and plain and re.search(r"reset", message, re.I):
        where = "write https:// in the URL" if as_url else "try --scheme https"
        return f"an HTTPS listener resets plain HTTP: is this one HTTPS? {where} (WinRM's HTTPS port is 5986)"
    unencrypted = setting is not None and setting.message_encryption == "never"
    if kind == "protocol" and plain and unencrypted and re.search(r"unexpected HTTP 500 with 0 bytes", message):
        return "a listener that refuses unencrypted messages answers so: drop --message-encryption never (or use HTTPS)"
    if kind == "authentication" and re.search(r"offers none of the", message):
        return (
            "the host does not offer that authentication: choose another --transport (ntlm, kerberos, credssp, "
            "basic, certificate) or enable it on the host (CredSSP: Enable-WSManCredSSP -Role Server)"
        )
    if kind == "authentication":
        if setting is not None and setting.transport == "basic" and plain:
            return "Basic over plain HTTP also needs AllowUnencrypted on the host; else check the user and password"
        return "check the user name (DOMAIN\\user) and password; for Kerberos, the ticket and the SPN"
    if isinstance(error, MethodFailed) and (error.method, error.return_value) == ("KillJob", 32775):
        return (
            "Hyper-V answers 32775 (its Invalid State) for a job that has already finished or cannot be "
            "cancelled: hvjob show reads its state"
        )
    return None


def hints(report: FanoutReport, settings: Mapping[str, HostSetting] | None = None) -> list[str]:
    """One hint per kind of common mistake the report shows, naming the hosts it applies to."""
    found: dict[str, list[str]] = {}
    about_a_job = [r for r in report.results if r.job]
    # A job no host has is most often a typo, whether or not --missing-ok made that a success.
    nowhere = bool(about_a_job) and all(r.gone for r in about_a_job)
    for result in report.results:
        if nowhere and result.gone and result.job:
            hint: str | None = f"no job {result.job} there: check the id against hvjob list (it is the InstanceID)"
        elif result.error is not None and not result.gone:
            hint = _hint_for(result.error, (settings or {}).get(result.host))
        else:
            hint = None
        if hint is not None:
            found.setdefault(hint, []).append(result.host)
    return [f"{', '.join(hosts[:3])}{' and others' if len(hosts) > 3 else ''}: {hint}" for hint, hosts in found.items()]


# --- dry run -------------------------------------------------------------------------------------


def print_plans(plans: Sequence[tuple[str, str, Sequence[PlannedRequest]]], *, output: str) -> None:
    """Every envelope a command could send to each (host, url), in order, with the condition of each:
    commented XML (text), one JSON document (json) or one line per request (jsonl)."""
    from lxml import etree

    hosts = []
    for host, url, planned in plans:
        requests = []
        for number, step in enumerate(planned, 1):
            request = step.request
            name = request.method if request.operation == "Invoke" else request.operation
            pretty = etree.tostring(etree.fromstring(request.payload), pretty_print=True, encoding="unicode")
            if output == "text":
                when = f" (sent {step.when})" if step.when else ""
                click.echo(f"# {host} -> {url}: request {number}, {name}{when}")
                click.echo(pretty)
                continue
            line = {"step": number, "request": name, "when": step.when or None, "envelope": pretty}
            if output == "jsonl":
                click.echo(json.dumps({"host": host, "url": url, **line}))
            requests.append(line)
        hosts.append({"host": host, "url": url, "requests": requests})
    if output == "json":
        click.echo(json.dumps({"dry_run": True, "hosts": hosts}, indent=2))
