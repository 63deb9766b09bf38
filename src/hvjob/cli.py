"""The ``hvjob`` command line: a thin layer over :mod:`hvjob.jobs` and :mod:`hvjob.fanout`.

Exit status: 0 every host ok; 1 some host failed, none unreachable; 3 some host unreachable;
2 usage errors; 130 interrupted; 141 output closed. No traceback reaches the user; ``-v`` adds detail.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click

from hvjob import __version__
from hvjob.errors import HvjobError, UsageError
from hvjob.fanout import FanoutReport, HostTarget, dedupe_mutation, discover_cluster_nodes, run, targets_for
from hvjob.jobs import DEFAULT_CLASS, DEFAULT_NAMESPACE, METHODS, JobClient, JobState, OperationResult, state_label
from hvjob.transport import AUTH_METHODS, ConnectionOptions, WsmanSession, check_security, endpoint_url

EXIT_USAGE = 2
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE, as a shell reports a process killed by it


@dataclass
class Settings:
    """Global options, shared by every command."""

    namespace: str = DEFAULT_NAMESPACE
    class_name: str = DEFAULT_CLASS
    options: ConnectionOptions = field(default_factory=ConnectionOptions)
    concurrency: int = 32
    processes: int | None = None
    inventory: str | None = None
    limit: str | None = None
    vault_password_file: str | None = None
    cluster: bool = False
    cluster_domain: str | None = None
    resolve: dict[str, str] = field(default_factory=dict)
    output: str = "text"
    record: str | None = None
    check: bool = False
    dry_run: bool = False
    verbose: int = 0


def _usage(message: str) -> NoReturn:
    raise click.UsageError(message)


def _read_password(password_file: str | None) -> str | None:
    if password_file:
        try:
            return Path(password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            _usage(f"cannot read password file {password_file}: {exc.strerror}")
    env = os.environ.get("HVJOB_PASSWORD")
    if env is not None:
        return env
    return None


class _Group(click.Group):
    """Exit 141 when the reader of our output goes away (``| head``), not click's 1 ("failed").

    ``serve`` (the fake WinRM server) lives on the testing side and is imported only when used.
    """

    _LAZY = {"serve": "hvjob.testing.serve"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._LAZY:
            import importlib

            command: click.Command = getattr(importlib.import_module(self._LAZY[cmd_name]), cmd_name)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # A fan-out stops starting hosts when its results cannot be written. Point stdout at
            # /dev/null so the interpreter's final flush does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            click.echo("hvjob: output closed; no further hosts were started", err=True)
            sys.exit(EXIT_OUTPUT_CLOSED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="hvjob")
@click.option("--namespace", default=DEFAULT_NAMESPACE, show_default=True, help="WMI namespace of the job class.")
@click.option(
    "--class", "class_name", default=DEFAULT_CLASS, show_default=True, help="Job class (any CIM_ConcreteJob subclass)."
)
@click.option("--transport", type=click.Choice(AUTH_METHODS), default="ntlm", show_default=True, help="Authentication.")
@click.option(
    "-u",
    "--username",
    help="User (DOMAIN\\user or user@REALM). Password: HVJOB_PASSWORD, --password-file, or a prompt on a terminal.",
)
@click.option("--password-file", type=click.Path(dir_okay=False), help="File holding the password.")
@click.option("--scheme", type=click.Choice(["https", "http"]), default="https", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), help="Default 5986 (https) or 5985 (http).")
@click.option("--ca-trust", type=click.Path(dir_okay=False), help="CA bundle (PEM) to validate the server.")
@click.option("--insecure", is_flag=True, help="Do not validate the TLS certificate (warns).")
@click.option("--allow-unencrypted", is_flag=True, help="Allow plain HTTP without message encryption (warns).")
@click.option("--message-encryption", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True)
@click.option("--cert-pem", type=click.Path(dir_okay=False), help="Client certificate (certificate transport).")
@click.option("--cert-key-pem", type=click.Path(dir_okay=False), help="Client key (certificate transport).")
@click.option("--spn-service", help="Kerberos SPN service (default HTTP).")
@click.option("--spn-hostname", help="Kerberos SPN host name, if not the connect name.")
@click.option("--connect-timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
@click.option(
    "--operation-timeout",
    type=click.FloatRange(min=1),
    default=20.0,
    show_default=True,
    help="WS-Man OperationTimeout; the HTTP read timeout adds --read-timeout-margin.",
)
@click.option(
    "--read-timeout-margin",
    type=click.FloatRange(min=0.5),
    default=10.0,
    show_default=True,
    help="Seconds the HTTP read timeout waits beyond the OperationTimeout for the node's answer.",
)
@click.option(
    "--concurrency", type=click.IntRange(1, 4096), default=32, show_default=True, help="Hosts worked on at once."
)
@click.option(
    "--processes",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes sharing the hosts [default: one per CPU and per 64 hosts; 1: threads only].",
)
@click.option("--inventory", type=click.Path(), help="Ansible inventory (needs hvjob[ansible]).")
@click.option("--limit", help="Ansible host pattern to narrow the inventory.")
@click.option("--vault-password-file", type=click.Path(dir_okay=False), help="Ansible vault password file.")
@click.option("--cluster", is_flag=True, help="Act on every node of the host's failover cluster.")
@click.option("--cluster-domain", help="DNS domain appended to cluster node names.")
@click.option("--resolve", multiple=True, metavar="NAME=HOST[:PORT]", help="Where to connect for NAME (repeatable).")
@click.option("--output", type=click.Choice(["text", "json", "jsonl"]), default="text", show_default=True)
@click.option("--record", type=click.Path(file_okay=False), help="Write exchanges as scrubbed fixtures to DIR.")
@click.option("--check", is_flag=True, help="Read only; report what each host would do.")
@click.option("--dry-run", is_flag=True, help="Offline: print the envelopes the command would send first.")
@click.option("-v", "--verbose", count=True, help="More detail (-vv: SOAP traffic, secrets never shown).")
@click.pass_context
def main(ctx: click.Context, /, **kw: Any) -> None:
    """Control Hyper-V cluster jobs over WS-Management (WinRM)."""
    logging.basicConfig(
        level=logging.WARNING if kw["verbose"] == 0 else (logging.INFO if kw["verbose"] == 1 else logging.DEBUG),
        format="hvjob: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    if ctx.invoked_subcommand in ("serve", "decode"):
        ctx.obj = Settings(verbose=kw["verbose"])
        return
    resolve: dict[str, str] = {}
    for item in kw["resolve"]:
        name, sep, where = item.partition("=")
        if not sep or not name or not where:
            _usage(f"--resolve takes NAME=HOST[:PORT], not {item!r}")
        resolve[name] = where
    password = _read_password(kw["password_file"])
    options = ConnectionOptions(
        transport=kw["transport"],
        username=kw["username"],
        password=password,
        scheme=kw["scheme"],
        port=kw["port"],
        ca_trust_path=kw["ca_trust"],
        insecure=kw["insecure"],
        allow_unencrypted=kw["allow_unencrypted"],
        message_encryption=kw["message_encryption"],
        cert_pem=kw["cert_pem"],
        cert_key_pem=kw["cert_key_pem"],
        spn_service=kw["spn_service"],
        spn_hostname=kw["spn_hostname"],
        connect_timeout=kw["connect_timeout"],
        operation_timeout=kw["operation_timeout"],
        read_timeout_margin=kw["read_timeout_margin"],
    )
    ctx.obj = Settings(
        namespace=kw["namespace"],
        class_name=kw["class_name"],
        options=options,
        concurrency=kw["concurrency"],
        processes=kw["processes"],
        inventory=kw["inventory"],
        limit=kw["limit"],
        vault_password_file=kw["vault_password_file"],
        cluster=kw["cluster"],
        cluster_domain=kw["cluster_domain"],
        resolve=resolve,
        output=kw["output"],
        record=kw["record"],
        check=kw["check"],
        dry_run=kw["dry_run"],
        verbose=kw["verbose"],
    )


# --- shared machinery ----------------------------------------------------------------------------


def _password_missing(settings: Settings, options: ConnectionOptions) -> bool:
    """Kerberos (ticket cache) and certificates need no password; --dry-run sends nothing."""
    return options.password is None and options.transport not in ("kerberos", "certificate") and not settings.dry_run


def _need_password(settings: Settings) -> None:
    opts = settings.options
    if not _password_missing(settings, opts):
        return
    if not opts.username:
        _usage("--username is required (or use --inventory, or --transport kerberos with a ticket cache)")
    if sys.stdin.isatty():
        password = click.prompt(f"Password for {opts.username}", hide_input=True, err=True)
        settings.options = opts.with_password(password)
        return
    _usage("no password: set HVJOB_PASSWORD, use --password-file, or run on a terminal to be prompted")


def _targets(settings: Settings, hosts: tuple[str, ...]) -> list[HostTarget]:
    if settings.inventory:
        from hvjob.inventory import load_inventory

        targets = load_inventory(
            settings.inventory, hosts or ("all",), settings.limit, settings.options, settings.vault_password_file
        )
        if any(_password_missing(settings, t.options) for t in targets):
            _usage("no password for an inventory host: set ansible_password or HVJOB_PASSWORD")
    else:
        if not hosts:
            _usage("name at least one HOST (or use --inventory)")
        _need_password(settings)
        targets = targets_for(hosts, settings.options, settings.resolve, None)
    if settings.cluster:
        if len(targets) != 1:
            _usage("--cluster takes exactly one HOST: a node of the cluster")
        try:
            names = discover_cluster_nodes(targets[0])
        except HvjobError as exc:
            _fail_before_work(settings, targets[0].name, exc)
        targets = targets_for(names, targets[0].options, settings.resolve, settings.cluster_domain)
    for target in targets:
        try:
            check_security(endpoint_url(target.address, target.options), target.options)
        except UsageError as exc:
            _usage(f"{target.name}: {exc.message}")
    return targets


def _fail_before_work(settings: Settings, host: str, exc: HvjobError) -> NoReturn:
    result = OperationResult(host, "discover", error=exc)
    report = FanoutReport("discover", [result])
    _emit(settings, report)
    sys.exit(report.exit_code)


def _client_options(settings: Settings) -> dict[str, Any]:
    return {"namespace": settings.namespace, "class_name": settings.class_name, "check": settings.check}


def _dry_run(settings: Settings, targets: list[HostTarget], build_first: Callable[[JobClient], bytes]) -> None:
    for target in targets:
        session = WsmanSession(target.address, target.options)
        client = JobClient(session, **_client_options(settings))
        payload = build_first(client)
        if settings.output == "text":
            click.echo(f"# {target.name} -> {session.url}")
            click.echo(payload.decode("utf-8"))
        else:
            click.echo(json.dumps({"host": target.name, "url": session.url, "envelope": payload.decode("utf-8")}))
    sys.exit(0)


def _execute(
    settings: Settings,
    command: str,
    hosts: tuple[str, ...],
    operation: Callable[[JobClient], OperationResult],
    first_request: Callable[[JobClient], bytes],
    *,
    job_id: str | None = None,
    mutating: bool = False,
    missing_ok: bool = False,
) -> None:
    targets = _targets(settings, hosts)
    if settings.dry_run:
        _dry_run(settings, targets, first_request)
    progress = _Progress(len(targets), settings)
    if settings.cluster and mutating and job_id and not settings.check:
        report = dedupe_mutation(
            command,
            targets,
            job_id,
            operation,
            concurrency=settings.concurrency,
            processes=settings.processes,
            client_options=_client_options(settings),
            missing_ok=missing_ok,
            record_dir=settings.record,
            on_result=progress.update,
        )
    else:
        report = run(
            command,
            targets,
            operation,
            concurrency=settings.concurrency,
            processes=settings.processes,
            client_options=_client_options(settings),
            record_dir=settings.record,
            on_result=progress.update,
        )
        if job_id:
            report.extra["job_found_on"] = [r.host for r in report.results if r.job_seen]
    progress.close()
    _emit(settings, report, streamed=settings.output == "jsonl")
    if report.interrupted:
        click.echo("hvjob: interrupted; results above are the hosts that finished", err=True)
    sys.exit(report.exit_code)


class _Progress:
    """A progress bar on stderr for text output on a terminal; JSON lines as results arrive for jsonl."""

    def __init__(self, total: int, settings: Settings) -> None:
        self.settings = settings
        self.bar: Any = None
        if settings.output == "text" and total > 1 and sys.stderr.isatty():
            self.bar = click.progressbar(length=total, label="hosts", file=sys.stderr)
            self.bar.__enter__()

    def update(self, result: OperationResult) -> None:
        if self.bar is not None:
            self.bar.update(1)
        if self.settings.output == "jsonl":
            click.echo(json.dumps(result.to_dict()))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _emit(settings: Settings, report: FanoutReport, *, streamed: bool = False) -> None:
    if settings.output == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    elif settings.output == "jsonl":
        if not streamed:
            for result in report.results:
                click.echo(json.dumps(result.to_dict()))
        click.echo(json.dumps({"summary": report.summary}))
    else:
        click.echo(_table(report))


def _table(report: FanoutReport) -> str:
    rows = [("HOST", "STATUS", "CHANGED", "METHOD", "RETURN", "JOB STATE", "DETAIL")]
    for r in report.results:
        d = r.to_dict()
        ret = "" if d["return_value"] is None else f"{d['return_value']} {d['return_name']}"
        changed = {True: "yes", False: "no", None: "unknown"}[d["changed"]]
        detail = ""
        if r.error is not None:
            detail = f"{r.error.type}: {r.error.message}"
        elif r.command == "list":
            detail = f"{len(r.jobs or [])} job(s)"
        elif r.command == "errors":
            detail = "; ".join(str(e.get("Message")) for e in r.errors or []) or "no errors"
        elif r.command == "identify" and r.identity:
            detail = str(r.identity.get("product_version"))
        elif r.notes:
            detail = "; ".join(r.notes)
        rows.append((r.host, d["status"], changed, d["method"] or "", ret, d["job_state"] or "", detail))
    widths = [max(len(str(row[i])) for row in rows) for i in range(6)]
    lines = ["  ".join(str(v).ljust(widths[i]) for i, v in enumerate(row[:6])) + "  " + row[6] for row in rows]
    summary = report.summary
    lines.append(
        f"ok={summary['ok']} failed={summary['failed']} unreachable={summary['unreachable']}"
        + (f" job_found_on={','.join(summary['job_found_on']) or 'none'}" if "job_found_on" in summary else "")
        + (" (interrupted)" if report.interrupted else "")
    )
    for r in report.results:
        if r.command == "list":
            for job in r.jobs or []:
                lines.append(
                    f"  {r.host}  {job.get('InstanceID')}  {state_label(job.get('JobState'))}  "
                    f"{job.get('PercentComplete', '')}%  {job.get('Name') or ''}"
                )
    return "\n".join(line.rstrip() for line in lines)


def _states(text: str | None) -> list[JobState] | None:
    if not text:
        return None
    try:
        return [JobState.parse(part) for part in text.split(",") if part.strip()]
    except UsageError as exc:
        _usage(exc.message)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    match = _DURATION.match(text.strip())
    if not match:
        _usage(f"invalid duration {text!r} (like 90s, 30m, 2h, 1d)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _job_option(required: bool = True) -> Callable[[Any], Any]:
    return click.option("--job", "job_id", required=required, metavar="ID", help="The job's InstanceID.")


def _missing_ok_option(default: bool) -> Callable[[Any], Any]:
    return click.option(
        "--missing-ok/--no-missing-ok",
        default=default,
        show_default=True,
        help="A job that is gone counts as ok and unchanged.",
    )


# --- commands ------------------------------------------------------------------------------------


@main.command()
@click.argument("hosts", nargs=-1)
@click.option("--anonymous", is_flag=True, help="Send the unauthenticated Identify that Windows allows.")
@click.pass_obj
def identify(settings: Settings, hosts: tuple[str, ...], anonymous: bool) -> None:
    """Identify the WS-Man service (authenticated: also proves the credentials)."""
    if anonymous:  # no credentials are sent, so none are asked for
        settings.options = settings.options.with_password(settings.options.password or "")
    _execute(
        settings,
        "identify",
        hosts,
        lambda c: c.identify(anonymous=anonymous),
        lambda c: c.identify_request().payload,
    )


@main.command(name="list")
@click.argument("hosts", nargs=-1)
@click.option("--state", "states", metavar="STATE[,STATE...]", help="Only jobs in these states (Running, 4, ...).")
@click.pass_obj
def list_jobs(settings: Settings, hosts: tuple[str, ...], states: str | None) -> None:
    """List jobs of the class on each host (Enumerate + Pull with WQL)."""
    wanted = _states(states)
    _execute(settings, "list", hosts, lambda c: c.list(wanted), lambda c: c.enumerate_request(wanted).payload)


@main.command()
@click.argument("host")
@_job_option()
@click.pass_obj
def show(settings: Settings, host: str, job_id: str) -> None:
    """Show one job's properties."""
    _execute(
        settings, "show", (host,), lambda c: c.show(job_id), lambda c: c.get_request(job_id).payload, job_id=job_id
    )


@main.command()
@click.argument("hosts", nargs=-1)
@_job_option()
@click.option("--delete-on-kill", is_flag=True, help="KillJob's DeleteOnKill parameter (default false).")
@_missing_ok_option(False)
@click.pass_obj
def kill(settings: Settings, hosts: tuple[str, ...], job_id: str, delete_on_kill: bool, missing_ok: bool) -> None:
    """KillJob(DeleteOnKill): ok only when ReturnValue is 0."""

    def first(c: JobClient) -> bytes:
        if settings.check:
            return c.get_request(job_id).payload
        return c.invoke_request(job_id, "KillJob", [("DeleteOnKill", delete_on_kill)]).payload

    _execute(
        settings,
        "kill",
        hosts,
        lambda c: c.kill(job_id, delete_on_kill=delete_on_kill, missing_ok=missing_ok),
        first,
        job_id=job_id,
        mutating=True,
        missing_ok=missing_ok,
    )


@main.command()
@click.argument("hosts", nargs=-1)
@_job_option(required=False)
@click.option("--all", "all_jobs", is_flag=True, help="Select jobs by state and age instead of by id.")
@click.option("--state", "states", metavar="STATE[,STATE...]", help="With --all: states to stop (default Running).")
@click.option("--older-than", metavar="DURATION", help="With --all: only jobs started longer ago (90s, 30m, 2h, 1d).")
@click.option("--yes", is_flag=True, help="Confirm --all.")
@click.option("--mode", type=click.Choice(["kill", "terminate"]), default="kill", show_default=True)
@click.option("--method", type=click.Choice(METHODS), default="auto", show_default=True)
@click.option("--wait", is_flag=True, help="Wait until the job is terminal.")
@click.option("--timeout", type=click.FloatRange(min=0), default=300.0, show_default=True, help="Seconds to wait.")
@click.option("--force", is_flag=True, help="Send the request even if Cancellable is false.")
@_missing_ok_option(True)
@click.pass_obj
def stop(
    settings: Settings,
    hosts: tuple[str, ...],
    job_id: str | None,
    all_jobs: bool,
    states: str | None,
    older_than: str | None,
    yes: bool,
    mode: str,
    method: str,
    wait: bool,
    timeout: float,
    force: bool,
    missing_ok: bool,
) -> None:
    """Stop a job idempotently (RequestStateChange, falling back to KillJob)."""
    if bool(job_id) == bool(all_jobs):
        _usage("give either --job ID or --all")
    if all_jobs and not yes and not settings.check and not settings.dry_run:
        _usage("--all stops every matching job: add --yes")
    if not all_jobs and (states or older_than):
        _usage("--state and --older-than go with --all")
    stop_kw: dict[str, Any] = {
        "mode": mode,
        "method": method,
        "wait": wait,
        "timeout": timeout,
        "force": force,
        "missing_ok": missing_ok,
    }
    if job_id:
        _execute(
            settings,
            "stop",
            hosts,
            lambda c: c.stop(job_id, **stop_kw),
            lambda c: c.get_request(job_id).payload,
            job_id=job_id,
            mutating=True,
            missing_ok=missing_ok,
        )
    wanted = _states(states) or [JobState.RUNNING]
    age = _duration(older_than)

    def op(client: JobClient) -> OperationResult:
        return stop_all(client, wanted, age, stop_kw)

    _execute(settings, "stop", hosts, op, lambda c: c.enumerate_request(wanted).payload)


def stop_all(
    client: JobClient, states: list[JobState], older_than: float | None, stop_kw: dict[str, Any]
) -> OperationResult:
    """Stop every job in ``states`` (started more than ``older_than`` seconds ago) on one host."""
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    result = OperationResult(client.host, "stop", method="Enumerate")
    chosen = []
    for job in client.iter_jobs(states):
        if older_than is not None and (job.start_time is None or (now - job.start_time).total_seconds() < older_than):
            continue
        chosen.append(job.instance_id)
    outcomes = [client.stop(jid, **stop_kw) for jid in chosen]
    result.jobs = [o.to_dict() for o in outcomes]
    result.changed = any(o.changed for o in outcomes) if outcomes else False
    failed = [o for o in outcomes if not o.ok]
    if failed:
        result.error = failed[0].error
    result.notes.append(f"{len(chosen)} job(s) selected, {len(failed)} failed")
    return result


@main.command(name="wait")
@click.argument("host")
@_job_option()
@click.option("--timeout", type=click.FloatRange(min=0), default=300.0, show_default=True)
@click.option("--require-success", is_flag=True, help="Fail unless the job completed with ErrorCode 0.")
@click.pass_obj
def wait_job(settings: Settings, host: str, job_id: str, timeout: float, require_success: bool) -> None:
    """Poll a job until it is terminal."""
    _execute(
        settings,
        "wait",
        (host,),
        lambda c: c.wait(job_id, timeout=timeout, require_success=require_success),
        lambda c: c.get_request(job_id).payload,
        job_id=job_id,
    )


@main.command()
@click.argument("host")
@_job_option()
@click.pass_obj
def errors(settings: Settings, host: str, job_id: str) -> None:
    """Show a job's errors (GetErrorEx, or GetError)."""
    _execute(
        settings,
        "errors",
        (host,),
        lambda c: c.errors(job_id),
        lambda c: c.invoke_request(job_id, "GetErrorEx", []).payload,
        job_id=job_id,
    )


@main.command()
@click.argument("files", nargs=-1, required=True)
def decode(files: tuple[str, ...]) -> None:
    """Explain saved WS-Man responses offline: one JSON object per input (- is standard input)."""
    from hvjob.wire.parse import describe

    status = 0
    for name in files:
        try:
            data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            _usage(f"cannot read {name}: {exc.strerror}")
        try:
            out: dict[str, Any] = {"input": name, **describe(data)}
        except HvjobError as exc:
            out = {"input": name, "kind": "error", "error": exc.to_dict()}
            status = 1
        click.echo(json.dumps(out))
    sys.exit(status)


def run_cli() -> None:
    """Entry point wrapper: usage errors exit 2, interrupts 130, and nothing else escapes."""
    try:
        main.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("hvjob: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except UsageError as exc:
        click.echo(f"hvjob: error: {exc.message}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo("hvjob: interrupted", err=True)
        sys.exit(130)
    except HvjobError as exc:
        click.echo(f"hvjob: {exc.type}: {exc.message}", err=True)
        sys.exit(1)
