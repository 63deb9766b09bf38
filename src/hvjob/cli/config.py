"""Connection profiles: ``$XDG_CONFIG_HOME/hvjob/config.toml`` (docs/cli.md, "Profiles").

A ``[default]`` table and ``[profile.NAME]`` tables whose keys are the global options' long names
with dashes as underscores (``ca_trust``, ``cluster_domain``), plus ``hosts`` (the HOSTs when none
is named), ``groups`` (``@NAME`` on the command line stands for a group's hosts),
``password_command`` (run when a password is needed; its first line of output is the password) and
``keyring`` (the system keyring, service ``hvjob`` or the name given). Precedence: the command
line, then the environment (``HVJOB_<OPTION>``), then the profile, then ``[default]``, then the
built-in defaults; click applies it, the file only supplies its ``default_map``.

No password is ever read from the file, and a file that others can read is refused when it holds
anything secret-like (a ``password_command`` may embed one).
"""

from __future__ import annotations

import difflib
import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hvjob.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover (Python 3.10)
    import tomli as tomllib

#: Keys a profile may hold besides the global options.
EXTRA_KEYS = frozenset({"hosts", "groups", "password_command", "keyring"})
#: Keys that may carry a secret: the file holding them must be readable by its owner only.
SECRET_LIKE = frozenset({"password_command", "keyring"})
#: Keys refused outright: hvjob never reads a password from a file it did not ask for.
FORBIDDEN = frozenset({"password", "passwd", "secret", "token"})


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$HVJOB_CONFIG``, else ``$XDG_CONFIG_HOME/hvjob/config.toml`` (``~/.config`` by default)."""
    env = os.environ if environ is None else environ
    if env.get("HVJOB_CONFIG"):
        return Path(env["HVJOB_CONFIG"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hvjob" / "config.toml"


@dataclass(frozen=True)
class Profile:
    """The settings one run takes from the file: options by name, and where each came from."""

    path: Path | None
    name: str | None
    options: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)  # option -> "[default]" or "[profile.NAME]"
    hosts: list[str] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    password_command: str | None = field(default=None, repr=False)  # a command line may hold a secret
    keyring: str | None = None  # the keyring service name, when the profile asks for the keyring
    _passwords: dict[str | None, str] = field(default_factory=dict, repr=False, compare=False)

    def expand_hosts(self, hosts: tuple[str, ...]) -> tuple[str, ...]:
        """``@GROUP`` to its hosts; no HOST at all to the profile's ``hosts``."""
        if not hosts:
            return tuple(self.hosts)
        out: list[str] = []
        for host in hosts:
            if host.startswith("@"):
                if host[1:] not in self.groups:
                    known = ", ".join("@" + g for g in sorted(self.groups)) or "none"
                    raise UsageError(f"no host group {host} in {self.path or 'the config file'} (known: {known})")
                out.extend(self.groups[host[1:]])
            else:
                out.append(host)
        return tuple(out)

    def password(self, username: str | None) -> str | None:
        """Run ``password_command`` (or ask the keyring) for the password, once per user name and
        run (an inventory of many hosts asks once); None if neither is set."""
        if username not in self._passwords:
            if self.password_command:
                self._passwords[username] = _run_password_command(self.password_command, self.path)
            elif self.keyring:
                self._passwords[username] = _keyring_password(self.keyring, username)
            else:
                return None
        return self._passwords[username]


def load(option_names: Mapping[str, str], profile: str | None, environ: Mapping[str, str] | None = None) -> Profile:
    """Read the config file (absent: an empty profile) and select ``profile`` (None: [default]).

    ``option_names`` maps each global option's file key to its click parameter name.
    """
    path = config_path(environ)
    if not path.exists():
        if profile:
            raise UsageError(f"profile {profile!r} asked for, but there is no config file at {path}")
        return Profile(None, None)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        hint = ""
        if isinstance(exc, tomllib.TOMLDecodeError) and "Unescaped '\\'" in str(exc):
            hint = " (a DOMAIN\\user in TOML: single quotes 'CONTOSO\\admin', or the backslash doubled)"
        raise UsageError(f"cannot read {path}: {exc}{hint}") from exc
    unknown_tables = sorted(set(data) - {"default", "profile"})
    if unknown_tables:
        raise UsageError(f"{path}: unknown table [{unknown_tables[0]}]; use [default] and [profile.NAME]")
    tables: dict[str, Any] = data.get("profile", {})
    if not isinstance(tables, dict):
        raise UsageError(f"{path}: 'profile' must be tables [profile.NAME]")
    chosen: list[tuple[str, dict[str, Any]]] = [("[default]", data.get("default", {}))]
    if profile:
        if profile not in tables:
            known = ", ".join(sorted(tables)) or "none"
            raise UsageError(f"{path}: no profile {profile!r} (profiles: {known})")
        chosen.append((f"[profile.{profile}]", tables[profile]))
    for name, table in tables.items():
        _check_table(path, f"[profile.{name}]", table, option_names)
    _check_table(path, "[default]", chosen[0][1], option_names)
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for where, table in chosen:  # the profile overrides [default]
        for key, value in table.items():
            merged[key] = value
            origins[key] = where
    every_table = [data.get("default", {}), *tables.values()]
    if any(key in SECRET_LIKE for table in every_table if isinstance(table, dict) for key in table):
        _refuse_if_others_can_read(path)  # whichever profile is used: the file holds a secret-like key
    options = {option_names[k]: v for k, v in merged.items() if k in option_names}
    option_origins = {option_names[k]: origins[k] for k in merged if k in option_names}
    keyring = merged.get("keyring")
    return Profile(
        path=path,
        name=profile,
        options=options,
        origins=option_origins,
        hosts=[str(h) for h in merged.get("hosts", [])],
        groups={str(k): [str(h) for h in v] for k, v in merged.get("groups", {}).items()},
        password_command=merged.get("password_command"),
        keyring=("hvjob" if keyring is True else (str(keyring) if keyring else None)),
    )


def profile_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """The profiles the file defines (for shell completion); none when it cannot be read."""
    try:
        data = tomllib.loads(config_path(environ).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    tables = data.get("profile", {})
    return sorted(tables) if isinstance(tables, dict) else []


def _check_table(path: Path, where: str, table: Any, option_names: Mapping[str, str]) -> None:
    if not isinstance(table, dict):
        raise UsageError(f"{path}: {where} must be a table")
    for key, value in table.items():
        secret_like = key in FORBIDDEN or ("password" in key and key not in ("password_command", "password_file"))
        if secret_like:
            raise UsageError(
                f"{path}: {where} has {key!r}: hvjob reads no password from its config file; "
                "use password_command, keyring, password_file or HVJOB_PASSWORD"
            )
        if key not in option_names and key not in EXTRA_KEYS:
            close = difflib.get_close_matches(key, [*option_names, *EXTRA_KEYS], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"{path}: {where} has an unknown key {key!r}{hint}")
        if key == "hosts" and not (isinstance(value, list) and all(isinstance(h, str) for h in value)):
            raise UsageError(f"{path}: {where}: hosts must be a list of host names")
        if key == "groups" and not (
            isinstance(value, dict)
            and all(isinstance(v, list) and all(isinstance(h, str) for h in v) for v in value.values())
        ):
            raise UsageError(f"{path}: {where}: groups must be a table of NAME = [hosts]")
        if key == "password_command" and not isinstance(value, str):
            raise UsageError(f"{path}: {where}: password_command must be a string")
        if isinstance(value, str) and any(ord(c) < 32 for c in value):
            # "CONTOSO\backup" in double quotes: TOML reads \b as a backspace, silently.
            raise UsageError(
                f"{path}: {where}: {key} holds a control character ({value!r}): a backslash in double quotes "
                "starts an escape; write 'CONTOSO\\user' in single quotes, or double the backslash"
            )


def _refuse_if_others_can_read(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(
            f"{path} can be read by others (mode {stat.filemode(mode)}) and holds a password_command or keyring "
            f"setting: make it yours alone (chmod 600 {shlex.quote(str(path))})"
        )


def _run_password_command(command: str, path: Path | None) -> str:
    """The first line a command prints: as git credential helpers and ``pass`` are used."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"password_command in {path} cannot be parsed: {exc}") from exc
    if not argv:
        raise UsageError(f"password_command in {path} is empty")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    except OSError as exc:
        raise UsageError(f"password_command {argv[0]!r} from {path} did not run: {exc.strerror}") from exc
    except subprocess.TimeoutExpired:  # its text names the whole command line, which may hold a secret
        raise UsageError(f"password_command {argv[0]!r} from {path} did not finish within 60 s") from None
    if done.returncode != 0:
        # Its stderr may say why (a locked store); its stdout is never shown: it may be the secret.
        said = done.stderr.strip().splitlines()[-1][:200] if done.stderr.strip() else "no message"
        raise UsageError(f"password_command {argv[0]!r} from {path} failed (exit {done.returncode}): {said}")
    lines = done.stdout.splitlines()
    if not lines or not lines[0]:
        raise UsageError(f"password_command {argv[0]!r} from {path} printed no password")
    return lines[0]


def _keyring_password(service: str, username: str | None) -> str:
    try:
        import keyring
        import keyring.errors
    except ImportError as exc:
        raise UsageError("the profile asks for the keyring: pip install 'hvjob[keyring]'") from exc
    if not username:
        raise UsageError("the keyring needs a user name to look up: give -u or set username in the profile")
    try:
        password = keyring.get_password(service, username)
    except keyring.errors.KeyringError as exc:
        raise UsageError(f"the system keyring failed: {exc}") from exc
    if password is None:
        raise UsageError(
            f"no password for {username} in the keyring (service {service!r}): "
            f"store one with: keyring set {shlex.quote(service)} {shlex.quote(username)}"
        )
    return str(password)
