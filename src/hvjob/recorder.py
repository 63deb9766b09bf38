"""Record live exchanges (after decryption) as scenario fixtures, scrubbed for committing.

Host names, user names, domains, machine names, SIDs and anything credential-like are replaced by
stable placeholders (the same input always gets the same placeholder within one recording), so a
user can capture a real Hyper-V node's answers and commit them. See docs/fixtures.md.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hvjob import __version__
from hvjob.scenario import describe_request, dump_scenario
from hvjob.wire.build import WsmanRequest

_SID = re.compile(r"S-1-5-21(?:-\d+){3,4}")
_MACHINE_ATTR = re.compile(r'(Machine=")([^"]+)(")')
_DOMAIN_USER = re.compile(r"\b([A-Za-z][A-Za-z0-9-]{0,14})\\([A-Za-z0-9._$-]{1,64})\b")
_SECRETS = re.compile(r"(?i)(<(?:\w+:)?(?:Password|Secret|Credential|Token)[^>]*>)[^<]*(<)")


class Scrubber:
    """Replace identifying values by placeholders, consistently."""

    def __init__(self, *, hosts: list[str] | None = None, users: list[str] | None = None) -> None:
        self._map: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self.hosts = [h for h in (hosts or []) if h]
        self.users = [u for u in (users or []) if u]

    def _placeholder(self, kind: str, value: str) -> str:
        key = f"{kind}:{value.lower()}"
        if key not in self._map:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            self._map[key] = f"{kind}{self._counts[kind]}"
        return self._map[key]

    def scrub(self, text: str) -> str:
        text = _SECRETS.sub(r"\1REDACTED\2", text)
        text = _SID.sub(lambda m: self._placeholder("S-1-5-21-REDACTED-", m.group(0)), text)
        text = _MACHINE_ATTR.sub(lambda m: m.group(1) + self._placeholder("HOST", m.group(2)) + m.group(3), text)
        text = _DOMAIN_USER.sub(
            lambda m: f"{self._placeholder('DOMAIN', m.group(1))}\\{self._placeholder('user', m.group(2))}", text
        )
        for host in sorted(self.hosts, key=len, reverse=True):
            short = host.split(".")[0]
            for name in {host, short} if len(short) > 2 else {host}:
                text = re.sub(
                    re.escape(name), lambda m: self._placeholder("HOST", m.group(0)), text, flags=re.IGNORECASE
                )
        for user in self.users:
            bare = user.split("\\")[-1].split("@")[0]
            text = re.sub(
                rf"\b{re.escape(bare)}\b", lambda m: self._placeholder("user", m.group(0)), text, flags=re.IGNORECASE
            )
        return text


class FixtureRecorder:
    """Pass as ``recorder=`` to a WsmanSession (or ``--record DIR``); call :meth:`save` at the end."""

    def __init__(
        self,
        directory: Path | str,
        name: str,
        *,
        endpoint: str = "",
        username: str | None = None,
        description: str = "",
    ) -> None:
        self.directory = Path(directory)
        self.name = name
        self.description = description or f"recorded {name}"
        host = urlsplit(endpoint).hostname if "://" in endpoint else endpoint.split(":", maxsplit=1)[0]
        self.scrubber = Scrubber(hosts=[host or ""], users=[username or ""])
        self._exchanges: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, request: WsmanRequest, status: int, body: bytes) -> None:
        pattern = describe_request(request.payload)
        scrub = self.scrubber.scrub
        entry: dict[str, Any] = {
            "request": {
                "action": pattern.action,
                "resource_uri": pattern.resource_uri,
            }
        }
        if pattern.selectors:
            entry["request"]["selectors"] = {k: scrub(v) for k, v in pattern.selectors.items()}
        if request.operation in ("Invoke", "Enumerate", "Pull") and pattern.body:
            entry["request"]["body"] = scrub(pattern.body)
        entry["response"] = {"status": status, "body": scrub(body.decode("utf-8", "replace"))}
        with self._lock:
            self._exchanges.append(entry)

    def save(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.name}.yml"
        when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
        origin = f"recorded from a real host by hvjob {__version__} on {when} (scrubbed)"
        with self._lock:
            path.write_text(dump_scenario(self.description, origin, list(self._exchanges)), encoding="utf-8")
        return path
