"""``hvjob serve``: the fake WinRM server as a command, for testing automation off-Windows.

It lives on the testing side: the ``hvjob`` command loads it only when ``serve`` is asked for,
so the library and the other commands never import the fake server or its dependencies.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import NoReturn

import click

from hvjob.errors import HvjobError
from hvjob.testing import FakeWinRMServer, demo_fixtures_dir, make_pki, read_users_file


def _usage(message: str) -> NoReturn:
    raise click.UsageError(message)


@click.command()
@click.option("--fixtures", type=click.Path(file_okay=False), help="Scenario directory (default: the demo set).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=5985, show_default=True)
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
@click.option("--latency-ms", type=float, default=0.0, help="Added before every response.")
@click.option("--idle-timeout", type=float, help="Close idle keep-alive connections after N seconds.")
def serve(
    fixtures: str | None,
    host: str,
    port: int,
    https: bool,
    pki_dir: str,
    users_file: str,
    auth: str,
    keytab: str | None,
    cbt: str,
    latency_ms: float,
    idle_timeout: float | None,
) -> None:
    """Run the fake WinRM server that replays fixtures (for testing automation off-Windows).

    With --https and the certificate scheme, a client certificate is issued for each user of
    --users (UPN USER@hvjob.test) into --pki-dir.
    """

    schemes = [a.strip().lower() for a in auth.split(",") if a.strip()]
    unknown = sorted(set(schemes) - {"negotiate", "ntlm", "basic", "credssp", "certificate"})
    if unknown or not schemes:
        _usage(f"unknown --auth scheme: {', '.join(unknown) or '(none)'}")
    if "certificate" in schemes and not https:
        _usage("the certificate scheme needs --https")
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
    try:
        server = FakeWinRMServer(
            Path(fixtures) if fixtures else demo_fixtures_dir(),
            host=host,
            port=port,
            users_file=users_file,
            auth=schemes,
            tls=tls,
            keytab=keytab,
            cbt=cbt,
            latency_ms=latency_ms,
            idle_timeout=idle_timeout,
        )
    except (HvjobError, OSError) as exc:
        _usage(str(exc))
    with server:
        click.echo(f"hvjob fake WinRM server on {server.url} ({len(server.scenarios)} scenarios)", err=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            sys.exit(130)
