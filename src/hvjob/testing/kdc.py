"""A throw-away MIT Kerberos realm on loopback, for testing Kerberos against the fake server.

It runs Debian's ``krb5kdc`` (packages ``krb5-kdc``, ``krb5-admin-server``, ``krb5-user``) with a
database, configuration, keytab and ticket cache that all live in one directory the caller gives;
nothing outside it is touched. :meth:`MiniKDC.environment` returns the ``KRB5_*`` variables that
point a client (pykerberos, gssapi) and the fake server's acceptor at it.

Kerberos needs names, not addresses: the service principal is ``HTTP/<host_name>`` while the
client connects to ``127.0.0.1``, so clients must set the SPN host name (``spn_hostname`` in
hvjob, ``kerberos_hostname_override`` in pywinrm) -- the same override that real deployments
behind a load balancer or an alias need.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hvjob.testing import free_port

_SBIN = os.pathsep.join(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"])
TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")


class KDCUnavailable(RuntimeError):
    """The MIT Kerberos tools are not installed here."""


def find_tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=_SBIN)


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if find_tool(tool) is None]


@dataclass
class MiniKDC:
    """One realm, one user and one HTTP service principal; use as a context manager."""

    directory: Path
    realm: str = "HVJOB.TEST"
    domain: str = "hvjob.test"
    user: str = "operator"
    password: str = field(default_factory=lambda: "Kdc-" + secrets.token_urlsafe(12))
    host_name: str = "hvnode01.hvjob.test"
    port: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __repr__(self) -> str:  # never the password
        return f"MiniKDC(realm={self.realm!r}, port={self.port}, user={self.user!r})"

    @property
    def principal(self) -> str:
        return f"{self.user}@{self.realm}"

    @property
    def service_principal(self) -> str:
        return f"HTTP/{self.host_name}@{self.realm}"

    @property
    def keytab(self) -> Path:
        return self.directory / "http.keytab"

    @property
    def ccache(self) -> Path:
        return self.directory / "ccache"

    @property
    def krb5_conf(self) -> Path:
        return self.directory / "krb5.conf"

    def environment(self) -> dict[str, str]:
        """Variables for clients and acceptors: configuration, ticket cache and service keytab."""
        return {
            "KRB5_CONFIG": str(self.krb5_conf),
            "KRB5_KDC_PROFILE": str(self.directory / "kdc.conf"),
            "KRB5CCNAME": f"FILE:{self.ccache}",
            "KRB5_KTNAME": f"FILE:{self.keytab}",
            "KRB5_CLIENT_KTNAME": f"FILE:{self.directory / 'client.keytab'}",
        }

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> MiniKDC:
        missing = missing_tools()
        if missing:
            raise KDCUnavailable("MIT Kerberos tools not found: " + ", ".join(missing))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self._write_config()
        master = secrets.token_urlsafe(16)
        self._run("kdb5_util", "-r", self.realm, "create", "-s", "-P", master)
        self._kadmin(f"addprinc -pw {self.password} {self.principal}")
        self._kadmin(f"addprinc -randkey {self.service_principal}")
        self._kadmin(f"ktadd -k {self.keytab} {self.service_principal}")
        log = (self.directory / "krb5kdc.out").open("wb")
        self._process = subprocess.Popen(
            [self._tool("krb5kdc"), "-n", "-r", self.realm],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_listening()
        return self

    def kinit(self) -> None:
        """Get a ticket for the user into :attr:`ccache`, as ``kinit`` at a terminal would."""
        self._run("kinit", self.principal, stdin=(self.password + "\n").encode())

    def kdestroy(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.ccache.unlink()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> MiniKDC:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def activated(self) -> Iterator[MiniKDC]:
        """Set :meth:`environment` in ``os.environ`` for the duration (the krb5 library reads it)."""
        saved = {key: os.environ.get(key) for key in self.environment()}
        os.environ.update(self.environment())
        try:
            yield self
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    # --- helpers -------------------------------------------------------------------------------

    def _write_config(self) -> None:
        d = self.directory
        self.krb5_conf.write_text(
            f"""[libdefaults]
    default_realm = {self.realm}
    dns_lookup_realm = false
    dns_lookup_kdc = false
    rdns = false
    dns_canonicalize_hostname = false
    ignore_acceptor_hostname = true
    udp_preference_limit = 1
    forwardable = true

[realms]
    {self.realm} = {{
        kdc = 127.0.0.1:{self.port}
    }}

[domain_realm]
    .{self.domain} = {self.realm}
    {self.domain} = {self.realm}
"""
        )
        (d / "kdc.conf").write_text(
            f"""[kdcdefaults]
    kdc_ports = {self.port}
    kdc_tcp_ports = {self.port}

[realms]
    {self.realm} = {{
        database_name = {d / "principal"}
        key_stash_file = {d / "stash"}
        acl_file = {d / "kadm5.acl"}
        max_life = 10h
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }}

[logging]
    kdc = FILE:{d / "kdc.log"}
"""
        )
        (d / "kadm5.acl").write_text("")

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self.environment()}

    def _tool(self, name: str) -> str:
        path = find_tool(name)
        if path is None:
            raise KDCUnavailable(f"{name} not found")
        return path

    def _run(self, tool: str, *args: str, stdin: bytes | None = None) -> None:
        result = subprocess.run(
            [self._tool(tool), *args], env=self._env(), input=stdin, capture_output=True, timeout=60, check=False
        )
        if result.returncode != 0:
            # the arguments may hold the password: report the tool and its own output only
            output = (result.stdout + result.stderr).decode("utf-8", "replace").replace(self.password, "********")
            raise RuntimeError(f"{tool} failed ({result.returncode}): {output.strip()}")

    def _kadmin(self, query: str) -> None:
        self._run("kadmin.local", "-r", self.realm, "-q", query)

    def _wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                output = (self.directory / "krb5kdc.out").read_text(errors="replace")
                raise RuntimeError(f"krb5kdc exited ({self._process.returncode}): {output.strip()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.05)
        raise RuntimeError(f"krb5kdc did not listen on 127.0.0.1:{self.port} within {timeout:.0f} s")
