"""The ``hvjob`` commands and their options; what they print is :mod:`hvjob.cli.output`'s."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from hvjob import __version__
from hvjob.cli import config, output
from hvjob.cli import watch as live
from hvjob.cli.output import in_cli_words
from hvjob.errors import HvjobError, Interrupted, UsageError
from hvjob.fanout import (
    FanoutReport,
    HostTarget,
    cluster_targets,
    discover_cluster_nodes,
    list_once,
    on_job_node,
    run,
    stop_selected_once,
    targets_for,
)
from hvjob.jobs import (
    DEFAULT_CLASS,
    DEFAULT_NAMESPACE,
    METHODS,
    JobClient,
    JobFilter,
    JobState,
    OperationResult,
    PlannedRequest,
    check_class,
)
from hvjob.transport import (
    AUTH_METHODS,
    ConnectionOptions,
    WsmanSession,
    check_security,
    default_port,
    endpoint_url,
    without_userinfo,
)
from hvjob.wire import build, ns

EXIT_USAGE = 2
EXIT_OUTPUT_CLOSED = 141  # 128 + SIGPIPE, as a shell reports a process killed by it
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70  # EX_SOFTWARE: hvjob itself failed

#: Transports that authenticate with a user name and password (Kerberos may use a ticket cache,
#: certificates need neither).
_PASSWORD_TRANSPORTS = frozenset({"ntlm", "credssp", "basic"})


@dataclass
class Settings:
    """Global options, shared by every command."""

    namespace: str = DEFAULT_NAMESPACE
    class_name: str = DEFAULT_CLASS
    options: ConnectionOptions = field(default_factory=ConnectionOptions)
    explicit: frozenset[str] = frozenset()  # options the user gave (command line or environment)
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
    anonymous: bool = False  # identify --anonymous: no credentials needed
    profile: config.Profile = field(default_factory=lambda: config.Profile(None, None))
    sort_by: str | None = None  # list --sort


def _usage(message: str) -> NoReturn:
    raise click.UsageError(in_cli_words(message))


def _read_password(password_file: str | None, given: bool) -> str | None:
    """The password by precedence: ``--password-file`` given on the command line or as
    HVJOB_PASSWORD_FILE, then HVJOB_PASSWORD, then a profile's ``password_file`` (``given`` False).
    A profile's password_command or keyring comes later, only when a password is needed."""
    if password_file and given:
        return _password_from(password_file)
    from_environment = _environment_password()
    if from_environment is not None:
        return from_environment
    return _password_from(password_file) if password_file else None


def _environment_password() -> str | None:
    """HVJOB_PASSWORD; set but empty is unset (``$HVJOB_PASSWORD`` expanded from nothing), as
    click takes an empty HVJOB_USERNAME."""
    return os.environ.get("HVJOB_PASSWORD") or None


def _password_from(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        _usage(f"cannot read password file {path}: {exc.strerror}")


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


# --- logging -------------------------------------------------------------------------------------


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        source = "hvjob" if record.name.startswith("hvjob") else f"hvjob: {record.name}"
        return f"{source}: {record.levelname}: {record.getMessage()}"


class _OnceOnly(logging.Filter):
    """Security warnings the transport logs per host (insecure, unencrypted) are said once per run,
    by the CLI itself, with the number of hosts; the per-host copies are dropped here."""

    TEMPLATES = ("not validating the TLS certificate", "sending unencrypted WS-Man traffic")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "hvjob.transport" and str(record.msg).startswith(self.TEMPLATES))


def _configure_logging(verbose: int, loggers: tuple[str, ...]) -> None:
    """hvjob's own loggers follow ``-v``; every other library's stays at WARNING unless named with
    ``--debug-logger`` (pyspnego's DEBUG log holds NTLM tokens: hvjob never turns it on by itself)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    handler.addFilter(_OnceOnly())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    level = logging.WARNING if verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    logging.getLogger("hvjob").setLevel(level)
    for name in loggers:
        logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger("hvjob").warning(
            "--debug-logger %s: that library's DEBUG log may show authentication tokens; do not share it", name
        )


# --- the group and its global options ------------------------------------------------------------


def _complete_profiles(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    return [name for name in config.profile_names() if name.startswith(incomplete)]


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", prog_name="hvjob")
@click.option(
    "--profile",
    metavar="NAME",
    shell_complete=_complete_profiles,
    help="Settings from [profile.NAME] of the config file (docs/cli.md).",
)
@click.option("--namespace", default=DEFAULT_NAMESPACE, show_default=True, help="WMI namespace of the job class.")
@click.option(
    "--class", "class_name", default=DEFAULT_CLASS, show_default=True, help="Job class (any CIM_ConcreteJob subclass)."
)
@click.option("--transport", type=click.Choice(AUTH_METHODS), default="ntlm", show_default=True, help="Authentication.")
@click.option(
    "-u",
    "--username",
    envvar="HVJOB_USERNAME",
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
@click.option("--dry-run", is_flag=True, help="Offline: print every envelope the command could send, in order.")
@click.option("-v", "--verbose", count=True, help="More detail (-v: requests per host, all properties; -vv: SOAP).")
@click.option(
    "--debug-logger",
    "debug_loggers",
    multiple=True,
    metavar="NAME",
    help="Also show this library logger's DEBUG messages (urllib3, spnego, ...); may show tokens.",
)
@click.pass_context
def main(ctx: click.Context, /, **kw: Any) -> None:
    """Control Hyper-V cluster jobs over WS-Management (WinRM)."""
    _configure_logging(kw["verbose"], kw["debug_loggers"])
    if ctx.invoked_subcommand in ("serve", "decode", "completion"):
        ctx.obj = Settings(verbose=kw["verbose"])
        return
    try:
        check_class(kw["namespace"], kw["class_name"])
    except UsageError as exc:
        _usage(exc.message)
    resolve: dict[str, str] = {}
    for item in kw["resolve"]:
        name, sep, where = item.partition("=")
        if not sep or not name or not where:
            _usage(f"--resolve takes NAME=HOST[:PORT], not {item!r}")
        resolve[name] = where
    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    password = _read_password(kw["password_file"], ctx.get_parameter_source("password_file") in given)
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
    profile = ctx.obj if isinstance(ctx.obj, config.Profile) else config.Profile(None, None)
    ctx.obj = Settings(
        namespace=kw["namespace"],
        class_name=kw["class_name"],
        options=options,
        explicit=frozenset(name for name in kw if ctx.get_parameter_source(name) in given),
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
        profile=profile,
    )


def _environment_variables() -> None:
    """Every global option reads ``HVJOB_<LONG NAME>`` (``--ca-trust``: ``HVJOB_CA_TRUST``), shown in
    --help. Only the global options: a command's own (``--yes``, ``--force``) come from the command
    line alone, so that no variable left in an environment can confirm a stop."""
    for param in main.params:
        longs = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
        if isinstance(param, click.Option) and longs and param.name not in ("version", "help"):
            param.envvar = "HVJOB_" + longs[0][2:].upper().replace("-", "_")
            param.show_envvar = True


_environment_variables()


# --- shared machinery ----------------------------------------------------------------------------


def _needs_credentials(settings: Settings, options: ConnectionOptions) -> bool:
    """Kerberos (ticket cache) and certificates need no password; --dry-run and an anonymous
    Identify send none."""
    return options.transport in _PASSWORD_TRANSPORTS and not settings.dry_run and not settings.anonymous


def _need_credentials(settings: Settings) -> None:
    opts = settings.options
    if not _needs_credentials(settings, opts):
        return
    if not opts.username:
        _usage(
            f"no user name for {opts.transport}: give -u/--username or set HVJOB_USERNAME "
            "(or use --inventory, or --transport kerberos with a ticket cache)"
        )
    if opts.password is not None:
        return
    from_profile = settings.profile.password(opts.username)
    if from_profile is not None:
        settings.options = opts.with_password(from_profile)
        return
    if sys.stdin.isatty():
        password = click.prompt(f"Password for {opts.username}", hide_input=True, err=True)
        settings.options = opts.with_password(password)
        return
    empty = " (it is set, but empty)" if os.environ.get("HVJOB_PASSWORD") == "" else ""
    _usage(f"no password: set HVJOB_PASSWORD{empty}, use --password-file, or run on a terminal to be prompted")


def _targets(settings: Settings, hosts: tuple[str, ...]) -> list[HostTarget]:
    if not settings.inventory:
        try:
            hosts = settings.profile.expand_hosts(hosts)
        except UsageError as exc:
            _usage(exc.message)
    if settings.inventory:
        from hvjob.inventory import load_inventory

        targets = load_inventory(
            settings.inventory,
            hosts or ("all",),
            settings.limit,
            settings.options,
            settings.vault_password_file,
            explicit=settings.explicit,
        )
        for position, target in enumerate(targets):
            if _needs_credentials(settings, target.options):
                if not target.options.username:
                    _usage(f"{target.name}: no user name: set ansible_user, -u or HVJOB_USERNAME")
                if target.options.password is None:
                    from_profile = settings.profile.password(target.options.username)
                    if from_profile is None:
                        _usage(f"{target.name}: no password: set ansible_password or HVJOB_PASSWORD")
                    targets[position] = HostTarget(
                        target.name, target.address, target.options.with_password(from_profile)
                    )
    else:
        if not hosts:
            _usage("name at least one HOST (or use --inventory, or hosts in a profile)")
        _need_credentials(settings)
        targets = targets_for(hosts, settings.options, settings.resolve, None)
    for target in targets:
        try:
            check_security(endpoint_url(target.address, target.options), target.options)
        except UsageError as exc:
            _usage(f"{without_userinfo(target.name)}: {exc.message}")
    if settings.cluster:
        if len(targets) != 1:
            _usage("--cluster takes exactly one HOST: a node of the cluster")
        if settings.dry_run:
            return targets
        try:
            names = discover_cluster_nodes(targets[0])
        except HvjobError as exc:
            _fail_before_work(settings, targets[0], exc)
        except KeyboardInterrupt:  # discovery only reads: nothing was changed anywhere
            why = Interrupted(
                "interrupted while the cluster's nodes were discovered; nothing was changed", host=targets[0].name
            )
            _fail_before_work(settings, targets[0], why, interrupted=True)
        targets = cluster_targets(targets[0], names, settings.resolve, settings.cluster_domain)
    _warn_weak_security(targets)
    return targets


def _warn_weak_security(targets: list[HostTarget]) -> None:
    """Once per run (the transport's per-host warnings are filtered out): what was asked for by name."""
    insecure = [t.name for t in targets if t.options.insecure]
    plain = [t.name for t in targets if t.options.allow_unencrypted and t.options.scheme == "http"]
    log = logging.getLogger("hvjob")
    if insecure:
        log.warning("not validating TLS certificates (--insecure) of %d host(s): %s", len(insecure), _few(insecure))
    if plain:
        log.warning("unencrypted WS-Man traffic (--allow-unencrypted) to %d host(s): %s", len(plain), _few(plain))


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _fail_before_work(settings: Settings, seed: HostTarget, exc: HvjobError, interrupted: bool = False) -> NoReturn:
    result = OperationResult(seed.name, "discover", error=exc)
    report = FanoutReport("discover", [result], interrupted=interrupted)
    output.emit(report, output=settings.output, verbose=settings.verbose, hosts=output.host_settings([seed]))
    sys.exit(report.exit_code)


def _client_options(settings: Settings) -> dict[str, Any]:
    return {"namespace": settings.namespace, "class_name": settings.class_name, "check": settings.check}


def _dry_run(
    settings: Settings,
    targets: list[HostTarget],
    plan: Callable[[JobClient], list[PlannedRequest]],
    job_id: str | None = None,
) -> NoReturn:
    plans = []
    for target in targets:
        session = WsmanSession(target.address, target.options)
        client = JobClient(session, **_client_options(settings))
        steps = plan(client)
        if settings.cluster:  # discovery on this node, then each node of the cluster as below
            discover = build.build_enumerate(
                session.header_options, ns.wmi_namespace_uri("root/MSCluster"), wql="SELECT * FROM MSCluster_Node"
            )
            first = [PlannedRequest("first, on this node: the cluster's nodes", discover)]
            if job_id:  # every node is read; the first that has the job does the rest
                steps = [
                    PlannedRequest("then on every node: does it have the job", steps[0].request),
                    *(PlannedRequest(f"on the first node that has it: {s.when or 'always'}", s.request) for s in steps),
                ]
            else:
                steps = [PlannedRequest(f"then on every node: {s.when or 'always'}", s.request) for s in steps]
            steps = first + steps
        plans.append((target.name, session.url, steps))
    output.print_plans(plans, output=settings.output)
    sys.exit(0)


@dataclass(frozen=True)
class _Command:
    """One command's work: what runs on each host, and how a cluster-wide run treats it."""

    name: str
    operation: Callable[[JobClient], OperationResult]
    plan: Callable[[JobClient], list[PlannedRequest]]
    job_id: str | None = None
    missing_ok: bool = False
    selection: JobFilter | None = None  # stop --all
    stop_options: dict[str, Any] = field(default_factory=dict)
    waits: bool = False  # polls a job to its end: progress bars on a terminal


def _execute(settings: Settings, hosts: tuple[str, ...], command: _Command) -> NoReturn:
    targets = _targets(settings, hosts)
    if settings.dry_run:
        _dry_run(settings, targets, command.plan, command.job_id)
    # A cluster-wide list is made "each job once" after every node has answered: its JSON lines
    # can only be written then, not as each node finishes.
    streams = settings.output == "jsonl" and not (settings.cluster and command.name == "list")
    with contextlib.ExitStack() as stack:
        report = _run_command(settings, targets, command, stack, streams)
    _report(settings, targets, report, streamed=streams)


def _run_command(
    settings: Settings, targets: list[HostTarget], command: _Command, stack: contextlib.ExitStack, streams: bool
) -> FanoutReport:
    client_options = _client_options(settings)
    processes = settings.processes
    showing_waits = command.waits and settings.output == "text" and sys.stderr.isatty()
    if showing_waits:  # the bars are fed from the hosts' threads, so the hosts stay in this process
        bars = stack.enter_context(live.WaitProgress({t.address: t.name for t in targets}))
        client_options["on_poll"] = bars.update
        processes = 1
    progress = _Progress(0 if showing_waits else len(targets), settings, stream=streams)
    common: dict[str, Any] = {
        "concurrency": settings.concurrency,
        "processes": processes,
        "client_options": client_options,
        "record_dir": settings.record,
        "on_result": progress.update,
    }
    if settings.cluster and command.job_id:
        report = on_job_node(
            command.name, targets, command.job_id, command.operation, missing_ok=command.missing_ok, **common
        )
    elif settings.cluster and command.selection is not None:
        report = stop_selected_once(targets, command.selection, command.stop_options, **common)
    else:
        report = run(command.name, targets, command.operation, **common)
        if settings.cluster and command.name == "list":
            list_once(report)
        if command.job_id:
            report.extra["job_found_on"] = [r.host for r in report.results if r.found]
    progress.close()
    return report


def _report(settings: Settings, targets: list[HostTarget], report: FanoutReport, *, streamed: bool) -> NoReturn:
    if settings.sort_by:
        key = _SORT_KEYS[settings.sort_by]
        for result in report.results:
            if result.jobs:
                result.jobs.sort(key=functools.partial(key, result.host))
    output.emit(
        report,
        output=settings.output,
        verbose=settings.verbose,
        streamed=streamed,
        sort=_SORT_KEYS[settings.sort_by] if settings.sort_by else None,
        hosts=output.host_settings(targets),
    )
    for path in report.recordings:
        click.echo(f"hvjob: recorded {path} (read it before committing it: docs/fixtures.md)", err=True)
    if report.interrupted:
        click.echo("hvjob: interrupted; each host's result says what was sent to it and what is unknown", err=True)
    if report.forced:
        # A second Ctrl-C: requests still on the wire are not waited for; neither is their thread.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    sys.exit(report.exit_code)


class _Progress:
    """A progress bar on stderr for text output on a terminal; JSON lines as results arrive for jsonl."""

    def __init__(self, total: int, settings: Settings, *, stream: bool) -> None:
        self.settings = settings
        self.stream = stream
        self.bar: Any = None
        if settings.output == "text" and total > 1 and sys.stderr.isatty():
            self.bar = click.progressbar(length=total, label="hosts", file=sys.stderr)
            self.bar.__enter__()

    def update(self, result: OperationResult) -> None:
        if self.bar is not None:
            self.bar.update(1)
        if self.stream:
            click.echo(json.dumps(result.to_dict()))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _states(text: str | None) -> list[JobState]:
    if not text:
        return []
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


def _job_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("a job id (InstanceID) cannot be empty")
    return value.strip() if value is not None else None


def _job_option(required: bool = True) -> Callable[[Any], Any]:
    return click.option(
        "--job", "job_id", required=required, metavar="ID", callback=_job_id, help="The job's InstanceID."
    )


def _missing_ok_option(default: bool) -> Callable[[Any], Any]:
    return click.option(
        "--missing-ok/--no-missing-ok",
        default=default,
        show_default=True,
        help="A job that is gone counts as ok and unchanged.",
    )


def _filter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--state, --older-than, --owner and --name: the job selection of list and stop --all."""
    for option in reversed(
        [
            click.option("--state", "states", metavar="STATE[,STATE...]", help="Only jobs in these states."),
            click.option(
                "--older-than",
                metavar="DURATION",
                help="Only jobs that have run longer (ElapsedTime, else since StartTime): 90s, 30m, 2h, 1d.",
            ),
            click.option("--owner", metavar="USER", help="Only jobs whose Owner is USER (case-insensitive)."),
            click.option("--name", "name_glob", metavar="GLOB", help="Only jobs whose name, VM group or export "
                         "directory matches GLOB (case-insensitive, * and ?)."),
        ]
    ):  # fmt: skip
        fn = option(fn)
    return fn


def _selection(states: str | None, older_than: str | None, owner: str | None, name: str | None) -> JobFilter:
    return JobFilter.of(_states(states), older_than=_duration(older_than), owner=owner, name=name)


def _complete_hosts(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """HOST completion: the profile's hosts and @groups, or the --inventory's hosts and groups."""
    root = ctx.find_root()
    inventory = root.params.get("inventory")
    names: list[str] = []
    if inventory:
        try:
            from ansible.inventory.manager import InventoryManager
            from ansible.parsing.dataloader import DataLoader

            manager = InventoryManager(loader=DataLoader(), sources=[inventory])
            names = sorted({h.name for h in manager.get_hosts()} | set(manager.groups))
        except Exception:  # completion must never fail loudly
            names = []
    else:
        try:  # the profile named on the line being completed (parsed by now), else HVJOB_PROFILE
            profile = config.load(file_keys(), root.params.get("profile") or os.environ.get("HVJOB_PROFILE"))
        except UsageError:
            profile = config.Profile(None, None)
        names = [*profile.hosts, *(f"@{group}" for group in profile.groups)]
    return [name for name in names if name.startswith(incomplete)]


_SORT_KEYS: dict[str, output.SortKey] = {
    "node": lambda host, job: host,
    "job": lambda host, job: str(job.get("InstanceID") or ""),
    "state": lambda host, job: int(job.get("JobState") or 0),
    "percent": lambda host, job: int(job.get("PercentComplete") or 0),
    "started": lambda host, job: str(job.get("StartTime") or ""),
    "elapsed": lambda host, job: float(job.get("ElapsedTime") or 0),
    "owner": lambda host, job: str(job.get("Owner") or "").casefold(),
    "name": lambda host, job: str(job.get("Name") or job.get("ElementName") or "").casefold(),
}


# --- commands ------------------------------------------------------------------------------------


@main.command()
@click.argument("hosts", nargs=-1, shell_complete=_complete_hosts)
@click.option("--anonymous", is_flag=True, help="Send the unauthenticated Identify that Windows allows.")
@click.pass_obj
def identify(settings: Settings, hosts: tuple[str, ...], anonymous: bool) -> None:
    """Identify the WS-Man service (authenticated: also proves the credentials)."""
    settings.anonymous = anonymous  # no credentials are sent, so none are asked for
    _execute(
        settings,
        hosts,
        _Command("identify", lambda c: c.identify(anonymous=anonymous), lambda c: c.plan("identify")),
    )


@main.command(name="list")
@click.argument("hosts", nargs=-1, shell_complete=_complete_hosts)
@_filter_options
@click.option(
    "--sort",
    "sort_by",
    type=click.Choice(sorted(_SORT_KEYS)),
    help="Order the jobs by this column (in the table, and within each host's JSON jobs).",
)
@click.pass_obj
def list_jobs(
    settings: Settings,
    hosts: tuple[str, ...],
    states: str | None,
    older_than: str | None,
    owner: str | None,
    name_glob: str | None,
    sort_by: str | None,
) -> None:
    """List jobs of the class on each host (Enumerate + Pull with WQL); with --cluster, each job once."""
    selection = _selection(states, older_than, owner, name_glob)
    settings.sort_by = sort_by
    _execute(
        settings,
        hosts,
        _Command("list", lambda c: c.list(where=selection), lambda c: c.plan("list", where=selection)),
    )


@main.command()
@click.argument("host", shell_complete=_complete_hosts)
@_job_option()
@click.pass_obj
def show(settings: Settings, host: str, job_id: str) -> None:
    """Show one job's properties (-v: all of them)."""
    _execute(
        settings, (host,), _Command("show", lambda c: c.show(job_id), lambda c: c.plan("show", job_id), job_id=job_id)
    )


@main.command()
@click.argument("hosts", nargs=-1, shell_complete=_complete_hosts)
@_job_option()
@click.option("--delete-on-kill", is_flag=True, help="KillJob's DeleteOnKill parameter (default false).")
@_missing_ok_option(False)
@click.pass_obj
def kill(settings: Settings, hosts: tuple[str, ...], job_id: str, delete_on_kill: bool, missing_ok: bool) -> None:
    """KillJob(DeleteOnKill): ok only when ReturnValue is 0."""
    _execute(
        settings,
        hosts,
        _Command(
            "kill",
            lambda c: c.kill(job_id, delete_on_kill=delete_on_kill, missing_ok=missing_ok),
            lambda c: c.plan("kill", job_id, delete_on_kill=delete_on_kill),
            job_id=job_id,
            missing_ok=missing_ok,
        ),
    )


@main.command()
@click.argument("hosts", nargs=-1, shell_complete=_complete_hosts)
@_job_option(required=False)
@click.option("--all", "all_jobs", is_flag=True, help="Select jobs (--state, --older-than, ...) instead of by id.")
@_filter_options
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
    owner: str | None,
    name_glob: str | None,
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
    if not all_jobs and (states or older_than or owner or name_glob):
        _usage("--state, --older-than, --owner and --name go with --all")
    stop_options: dict[str, Any] = {
        "mode": mode,
        "method": method,
        "wait": wait,
        "timeout": timeout,
        "force": force,
        "missing_ok": missing_ok,
    }
    plan_options: dict[str, Any] = {"mode": mode, "method": method, "wait": wait}
    if job_id:
        _execute(
            settings,
            hosts,
            _Command(
                "stop",
                lambda c: c.stop(job_id, **stop_options),
                lambda c: c.plan("stop", job_id, **plan_options),
                job_id=job_id,
                missing_ok=missing_ok,
                waits=wait,
            ),
        )
    selection = _selection(states, older_than, owner, name_glob)
    if not selection.states:
        selection = JobFilter((JobState.RUNNING,), selection.older_than, selection.owner, selection.name)
    _execute(
        settings,
        hosts,
        _Command(
            "stop",
            lambda c: c.stop_all(where=selection, **stop_options),
            lambda c: c.plan("stop-all", where=selection, **plan_options),
            selection=selection,
            stop_options=stop_options,
        ),
    )


@main.command(name="wait")
@click.argument("host", shell_complete=_complete_hosts)
@_job_option()
@click.option("--timeout", type=click.FloatRange(min=0), default=300.0, show_default=True)
@click.option("--require-success", is_flag=True, help="Fail unless the job completed with ErrorCode 0.")
@click.pass_obj
def wait_job(settings: Settings, host: str, job_id: str, timeout: float, require_success: bool) -> None:
    """Poll a job until it is terminal (exit 4 if it is still running when --timeout passes)."""
    _execute(
        settings,
        (host,),
        _Command(
            "wait",
            lambda c: c.wait(job_id, timeout=timeout, require_success=require_success),
            lambda c: c.plan("wait", job_id),
            job_id=job_id,
            waits=True,
        ),
    )


@main.command()
@click.argument("host", shell_complete=_complete_hosts)
@_job_option()
@click.pass_obj
def errors(settings: Settings, host: str, job_id: str) -> None:
    """Show a job's errors (GetErrorEx, or GetError)."""
    _execute(
        settings,
        (host,),
        _Command("errors", lambda c: c.errors(job_id), lambda c: c.plan("errors", job_id), job_id=job_id),
    )


@main.command(name="watch")
@click.argument("hosts", nargs=-1, shell_complete=_complete_hosts)
@click.option("--job", "job_ids", multiple=True, metavar="ID", help="Watch only this job (repeatable).")
@_filter_options
@click.option("--until-done", is_flag=True, help="Exit when every watched job is finished (exit codes as wait's).")
@click.option("--require-success", is_flag=True, help="With --until-done: exit 1 unless every job succeeded.")
@click.option("--timeout", type=click.FloatRange(min=0), help="With --until-done: exit 4 after SECONDS.")
@live.interval_option
@click.pass_obj
def watch_jobs(
    settings: Settings,
    hosts: tuple[str, ...],
    job_ids: tuple[str, ...],
    states: str | None,
    older_than: str | None,
    owner: str | None,
    name_glob: str | None,
    until_done: bool,
    require_success: bool,
    timeout: float | None,
    interval: float,
) -> None:
    """Watch jobs live on a terminal (or a JSON line per change off one); with --cluster, the cluster's."""
    selection = _selection(states, older_than, owner, name_glob)
    seed = (settings.profile.expand_hosts(hosts) or ("?",))[0]
    targets = _targets(settings, hosts)
    if settings.dry_run:
        _dry_run(settings, targets, lambda c: c.plan("list", where=selection))
    client_options = _client_options(settings)

    # The node selects by age, owner and name; states only say which jobs to start following (a job
    # that finishes leaves --state Running but stays in view until it is gone).
    on_node = JobFilter((), selection.older_than, selection.owner, selection.name)

    def poll(skip: frozenset[str]) -> FanoutReport:
        report = run(
            "list",
            [target for target in targets if target.name not in skip],
            lambda c: c.list(where=on_node),
            concurrency=settings.concurrency,
            processes=settings.processes,
            client_options=client_options,
        )
        return list_once(report) if settings.cluster else report

    title = f"{seed} (cluster, {len(targets)} nodes)" if settings.cluster else ", ".join(t.name for t in targets)
    options = live.WatchOptions(
        interval=interval,
        until_done=until_done,
        timeout=timeout,
        require_success=require_success,
        jobs=live.wanted_jobs(job_ids),
        states=frozenset(int(state) for state in selection.states),
        title=title,
        class_name=settings.class_name,
    )
    sys.exit(live.watch(poll, options))


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


@main.group(name="config")
def config_group() -> None:
    """The config file and its profiles (docs/cli.md, "Profiles")."""


@config_group.command(name="show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective settings and where each came from (never a password)."""
    root = ctx.find_root()
    settings: Settings = root.obj
    profile = settings.profile
    rows = []
    for param in main.params:
        if not isinstance(param, click.Option) or param.name in (None, "help", "version") or param.hidden:
            continue
        name = next(o for o in param.opts if o.startswith("--"))
        value, origin = root.params.get(param.name), _origin(root, param, profile)
        if param.name == "port" and value is None:  # what a host named without a port gets
            scheme = settings.options.scheme
            value, origin = default_port(scheme), f"{origin}, for --scheme {scheme}"
        rows.append((name, value, origin))
    rows.append(("password", None, _password_origin(settings)))
    if settings.output == "json":
        doc = {
            "config_file": str(profile.path) if profile.path else str(config.config_path()) + " (absent)",
            "profile": profile.name,
            "hosts": profile.hosts,
            "groups": profile.groups,
            "settings": {name.lstrip("-"): {"value": value, "origin": origin} for name, value, origin in rows},
        }
        click.echo(json.dumps(doc, indent=2))
        sys.exit(0)
    where = profile.path or f"{config.config_path()} (absent)"
    click.echo(f"config file: {where}" + (f", profile {profile.name}" if profile.name else ""))
    if profile.hosts or profile.groups:
        groups = " ".join(f"@{name}" for name in profile.groups)
        click.echo(f"hosts: {' '.join(profile.hosts) or '(none)'}" + (f"; groups: {groups}" if groups else ""))
    shown = [(name, "" if value is None else _shown(value), origin) for name, value, origin in rows]
    click.echo(output.table(["OPTION", "VALUE", "FROM"], shown))
    sys.exit(0)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return " ".join(str(v) for v in value)
    return str(value)


def _origin(root: click.Context, param: click.Parameter, profile: config.Profile) -> str:
    source = root.get_parameter_source(param.name or "")
    if source is ParameterSource.COMMANDLINE:
        return "command line"
    if source is ParameterSource.ENVIRONMENT:
        return f"environment {param.envvar}"
    if source is ParameterSource.DEFAULT_MAP:
        return f"{profile.path} {profile.origins.get(param.name or '', '')}".strip()
    return "default"


def _password_origin(settings: Settings) -> str:
    """Where the password would come from, in the order _read_password takes them; never the value."""
    root = click.get_current_context().find_root()
    password_file = root.params.get("password_file")
    given = root.get_parameter_source("password_file") in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    if password_file and given:
        return f"--password-file {password_file}"
    if _environment_password() is not None:
        return "environment HVJOB_PASSWORD (value not shown)"
    profile = settings.profile
    if password_file:
        return f"password_file {password_file} of {profile.path}"
    if profile.password_command:
        return f"password_command of {profile.path}"
    if profile.keyring:
        return f"system keyring, service {profile.keyring!r}"
    return "none: a prompt on a terminal"


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: eval "$(hvjob completion bash)" (docs/cli.md)."""
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    if completer is None:  # click knows all three; a future click might not
        _usage(f"no completion for {shell}")
    click.echo(completer(main, {}, "hvjob", "_HVJOB_COMPLETE").source())
    sys.exit(0)


# --- entry point ---------------------------------------------------------------------------------


def _global_option_names() -> set[str]:
    return {opt for param in main.params for opt in getattr(param, "opts", ())}


def _global_option_example(name: str) -> str:
    """How the option is typed before the command: ``--cluster`` alone, ``--scheme VALUE``."""
    for param in main.params:
        if name in getattr(param, "opts", ()) and isinstance(param, click.Option):
            return (
                name if param.is_flag or param.count else f"{name} {param.metavar or (param.name or 'value').upper()}"
            )
    return name


def file_keys() -> dict[str, str]:
    """Config file key (the long option name, dashes as underscores) -> the click parameter name."""
    keys = {}
    for param in main.params:
        longs = [o for o in getattr(param, "opts", ()) if o.startswith("--")]
        if longs and param.name and param.name not in ("profile", "version"):
            keys[longs[0][2:].replace("-", "_")] = param.name
    return keys


def _profile_asked(argv: list[str]) -> str | None:
    """``--profile NAME`` among the global options (before the command), else ``HVJOB_PROFILE``."""
    commands = set(main.list_commands(click.Context(main)))
    for index, arg in enumerate(argv):
        if arg in commands:
            break
        if arg == "--profile" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--profile="):
            return arg.split("=", 1)[1]
    return os.environ.get("HVJOB_PROFILE") or None


def _needs_no_profile(argv: list[str]) -> bool:
    return "_HVJOB_COMPLETE" in os.environ or any(a in ("--version", "-h", "--help", "completion") for a in argv)


def load_profile(argv: list[str]) -> config.Profile:
    profile = config.load(file_keys(), _profile_asked(argv))
    resolve = profile.options.get("resolve")
    if isinstance(resolve, dict):  # resolve = {HVNODE01 = "10.0.0.11"} reads better than a list
        profile.options["resolve"] = [f"{name}={where}" for name, where in resolve.items()]
    return profile


def run_cli() -> None:
    """Entry point wrapper: usage errors exit 2, interrupts 130, and nothing else escapes."""
    try:
        try:
            profile = load_profile(sys.argv[1:])
        except UsageError:
            if not _needs_no_profile(sys.argv[1:]):
                raise
            profile = config.Profile(None, None)  # --version, --help and completion work with a broken file
        main.main(
            prog_name="hvjob",
            complete_var="_HVJOB_COMPLETE",
            standalone_mode=False,
            default_map=profile.options,
            obj=profile,
        )
    except click.exceptions.NoSuchOption as exc:
        if exc.option_name in _global_option_names():
            command = exc.ctx.info_name if exc.ctx else "COMMAND"
            click.UsageError(
                f"{exc.option_name} is a global option: put it before the command "
                f"(hvjob {_global_option_example(exc.option_name)} {command} ...)",
                ctx=exc.ctx,
            ).show()
        else:
            exc.show()
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        click.echo("hvjob: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except UsageError as exc:
        click.echo(f"hvjob: error: {in_cli_words(exc.message)}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo("hvjob: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except HvjobError as exc:
        click.echo(f"hvjob: {exc.type}: {exc.message}", err=True)
        sys.exit(1)
    except Exception as exc:  # a bug of hvjob's: one line for the user, the traceback with -vv
        logging.getLogger("hvjob").debug("internal error", exc_info=True)
        click.echo(
            f"hvjob: internal error: {type(exc).__name__}: {exc} (a bug: please report it; -vv shows where)", err=True
        )
        sys.exit(EXIT_INTERNAL)
    finally:
        # From here on the process only exits: a Ctrl-C that lands in the interpreter's exit
        # handlers (logging's flush, a thread pool's join) ends it at once, with no traceback.
        signal.signal(signal.SIGINT, _exit_interrupted)


def _exit_interrupted(signum: int, frame: object) -> None:
    with contextlib.suppress(Exception):  # a write the signal cut into may refuse a reentrant flush
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)
