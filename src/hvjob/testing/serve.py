"""``hvjob serve``: the fake WinRM server as a command, for testing automation off-Windows.

``hvjob serve --simulate [CLUSTER.yml]`` runs a simulated Hyper-V failover cluster (one listener
per node, docs/testing.md); without ``--simulate`` it replays scenario fixtures (docs/fixtures.md).
It lives on the testing side: the ``hvjob`` command loads it only when ``serve`` is asked for,
so the library and the other commands never import the fake server or its dependencies.

With ``--simulate`` the first line on standard output is one JSON object,
``{"cluster": NAME, "nodes": {NODE: URL, ...}}``; then every request is one line on standard
error: node, operation, target, answer.
"""

from __future__ import annotations

import errno
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from hvjob.errors import HvjobError
from hvjob.testing import FakeWinRMServer, demo_fixtures_dir, make_pki, read_users_file

_SCHEMES = {"negotiate", "ntlm", "basic", "credssp", "certificate"}


def _usage(message: str) -> NoReturn:
    raise click.UsageError(message)


def _cannot_start(exc: HvjobError | OSError | ValueError, host: str, port: int, *, per_node: bool) -> NoReturn:
    """A listener that cannot bind names the address it wanted, and the way out."""
    if isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
        where = f"{host}:{port}" + (" (or a port after it: one per node)" if per_node else "")
        _usage(f"cannot listen on {where}: {exc.strerror}; --port 0 picks free ports")
    _usage(str(exc))


@click.command()
@click.option(
    "--simulate",
    "simulate",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[CLUSTER.yml]",
    help="Run a simulated Hyper-V cluster (the default one, or the cluster file given) instead of replay.",
)
@click.option("--fixtures", type=click.Path(file_okay=False), help="Scenario directory (default: the demo set).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5985,
    show_default=True,
    help="Listen port; with --simulate, the first node's (the others follow; 0: free ports).",
)
@click.option("--https", is_flag=True, help="Serve HTTPS with a certificate generated now (CA written to --pki-dir).")
@click.option("--pki-dir", type=click.Path(file_okay=False), default=".hvjob-pki", show_default=True)
@click.option(
    "--users",
    "users_file",
    type=click.Path(dir_okay=False),
    required=True,
    help="DOMAIN:USER:PASSWORD lines (empty DOMAIN allowed).",
)
@click.option(
    "--auth",
    default="negotiate,basic",
    show_default=True,
    help="Schemes offered: negotiate (NTLM, and Kerberos with --keytab), ntlm, basic, credssp, certificate.",
)
@click.option(
    "--keytab",
    type=click.Path(dir_okay=False),
    help="HTTP/host service keytab: Negotiate then accepts Kerberos (KRB5_CONFIG names the realm).",
)
@click.option("--cbt", type=click.Choice(["relaxed", "strict"]), default="relaxed", show_default=True)
@click.option(
    "--allow-unencrypted",
    is_flag=True,
    help="Accept unencrypted bodies and Basic over plain HTTP (Windows' AllowUnencrypted).",
)
@click.option("--latency-ms", type=float, default=0.0, help="Added before every response.")
@click.option("--idle-timeout", type=float, help="Close idle keep-alive connections after N seconds.")
@click.option("--nodes", type=click.IntRange(1, 10000), help="With --simulate and no file: the number of nodes.")
@click.option("--speed", type=click.FloatRange(0), help="With --simulate: simulated seconds per real second.")
@click.option(
    "--profile",
    "profile_items",
    multiple=True,
    metavar="SWITCH=VALUE",
    help="With --simulate: a behaviour-profile switch (repeatable; docs/testing.md).",
)
def serve(
    simulate: str | None,
    fixtures: str | None,
    host: str,
    port: int,
    https: bool,
    pki_dir: str,
    users_file: str,
    auth: str,
    keytab: str | None,
    cbt: str,
    allow_unencrypted: bool,
    latency_ms: float,
    idle_timeout: float | None,
    nodes: int | None,
    speed: float | None,
    profile_items: tuple[str, ...],
) -> None:
    """Run the fake WinRM server: a simulated Hyper-V cluster (--simulate) or fixture replay.

    With --https and the certificate scheme, a client certificate is issued for each user of
    --users (UPN USER@hvjob.test) into --pki-dir.
    """
    schemes = [a.strip().lower() for a in auth.split(",") if a.strip()]
    unknown = sorted(set(schemes) - _SCHEMES)
    if unknown or not schemes:
        _usage(f"unknown --auth scheme: {', '.join(unknown) or '(none)'}")
    if "certificate" in schemes and not https:
        _usage("the certificate scheme needs --https")
    if simulate is None and (nodes is not None or speed is not None or profile_items):
        _usage("--nodes, --speed and --profile need --simulate")
    if simulate is not None and fixtures:
        _usage("--simulate and --fixtures exclude each other")
    if simulate and nodes is not None:
        _usage("--nodes is for the default cluster; a cluster file lists its nodes")
    tls = None
    if https:
        pki = make_pki(Path(pki_dir), names=("localhost", host))
        tls = pki.server_context(client_ca=pki.ca_cert if "certificate" in schemes else None)
        click.echo(f"CA certificate: {pki.ca_cert}", err=True)
        if "certificate" in schemes:
            try:
                users = read_users_file(Path(users_file))
            except (HvjobError, OSError) as exc:
                _usage(str(exc))
            for name in users:
                cert, key = pki.issue_client_cert(name.rpartition("\\")[2] + "@hvjob.test")
                click.echo(f"client certificate: {cert} (key {key})", err=True)
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "users_file": users_file,
        "auth": schemes,
        "tls": tls,
        "keytab": keytab,
        "cbt": cbt,
        "latency_ms": latency_ms,
        "idle_timeout": idle_timeout,
        "allow_unencrypted": True if allow_unencrypted else None,
    }
    if simulate is not None:
        _simulate(simulate or None, nodes, speed, profile_items, common)
        return
    try:
        server = FakeWinRMServer(Path(fixtures) if fixtures else demo_fixtures_dir(), **common)
    except (HvjobError, OSError) as exc:
        _cannot_start(exc, host, port, per_node=False)
    with server:
        click.echo(f"hvjob fake WinRM server on {server.url} ({len(server.scenarios)} scenarios)", err=True)
        _wait_for_interrupt()


def _simulate(
    cluster_file: str | None,
    nodes: int | None,
    speed: float | None,
    profile_items: tuple[str, ...],
    common: dict[str, Any],
) -> None:
    import resource

    from hvjob.testing.sim import SimulatedCluster

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a listening socket and connections per node
    profile: dict[str, str] = {}
    for item in profile_items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            _usage(f"--profile takes SWITCH=VALUE, not {item!r}")
        profile[name.strip()] = value.strip()
    lock = threading.Lock()

    def log_request(line: dict[str, Any]) -> None:
        text = f"{line['node']} {line['operation']} {line['target']} -> {line['answer']}\n"
        with lock:
            sys.stderr.write(text)
            sys.stderr.flush()

    try:
        cluster = SimulatedCluster(
            Path(cluster_file) if cluster_file else None,
            nodes=nodes,
            profile=profile or None,
            speed=speed,
            on_request=log_request,
            **common,
        )
    except (HvjobError, OSError, ValueError) as exc:
        _cannot_start(exc, common["host"], common["port"], per_node=True)
    with cluster:
        click.echo(json.dumps({"cluster": cluster.name, "nodes": cluster.urls}))
        sys.stdout.flush()
        click.echo(f"hvjob simulated cluster {cluster.name}: {len(cluster.nodes)} nodes; Ctrl-C stops it", err=True)
        _wait_for_interrupt()


def _wait_for_interrupt() -> NoReturn:
    """Serve until Ctrl-C (exit 130) or SIGTERM (exit 143); the listeners close on the way out."""

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, terminate)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sys.exit(130)
