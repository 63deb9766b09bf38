"""A fake WinRM server that replays scenario fixtures over real HTTP(S) with real authentication.

:class:`FakeWinRMServer` is the HTTP/authentication front (:mod:`hvjob.testing.front`) with scenario
replay (:mod:`hvjob.testing.replay`) behind it. Requests that no fixture matches get the WS-Man
fault Windows sends for an unknown resource and are listed in ``stats.unmatched``.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hvjob.scenario import Exchange, RequestPattern, Scenario, load_scenarios
from hvjob.testing.front import (
    CERTIFICATE_AUTH_HEADER,
    IDENTIFY_RESPONSE,
    ServerStats,
    WinRMFront,
    read_users_file,
)
from hvjob.testing.replay import NOT_FOUND_FAULT, ScenarioReplay


class FakeWinRMServer(WinRMFront):
    """Replay ``scenarios`` on ``host:port`` (port 0 picks a free one). Use as a context manager.

    The options are :class:`~hvjob.testing.front.WinRMFront`'s; ``fault_plan`` is called for each
    dispatched request without an injection and returns one (or {}).
    """

    def __init__(
        self,
        scenarios: Iterable[Scenario] | Path | str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        users_file: Path | str | None = None,
        auth: Iterable[str] = ("negotiate", "basic"),
        tls: ssl.SSLContext | None = None,
        cbt: str = "relaxed",
        allow_unencrypted: bool | None = None,
        idle_timeout: float | None = None,
        latency_ms: float = 0.0,
        machine: str = "HVNODE01",
        keytab: Path | str | None = None,
        fault_plan: Callable[[RequestPattern], dict[str, Any]] | None = None,
        poll_interval: float = 0.05,
    ) -> None:
        if scenarios is None:
            from hvjob.testing import demo_fixtures_dir

            scenarios = demo_fixtures_dir()
        if isinstance(scenarios, (str, Path)):
            scenarios = load_scenarios(Path(scenarios))
        self.replay = ScenarioReplay(scenarios, fault_plan=fault_plan)
        super().__init__(
            self.replay,
            host=host,
            port=port,
            users_file=users_file,
            auth=auth,
            tls=tls,
            cbt=cbt,
            allow_unencrypted=allow_unencrypted,
            idle_timeout=idle_timeout,
            latency_ms=latency_ms,
            machine=machine,
            keytab=keytab,
            poll_interval=poll_interval,
        )

    @property
    def scenarios(self) -> list[Scenario]:
        return self.replay.scenarios

    @property
    def fault_plan(self) -> Callable[[RequestPattern], dict[str, Any]] | None:
        return self.replay.fault_plan

    def start(self) -> FakeWinRMServer:
        super().start()
        return self

    def __enter__(self) -> FakeWinRMServer:
        return self.start()

    def reset(self) -> None:
        """Start every fixture sequence from its first response again."""
        self.replay.reset()
        with self._lock:
            self.stats = ServerStats()

    def inject_next(self, **injection: Any) -> None:
        """Apply ``injection`` (see docs/fixtures.md) to the next request that reaches dispatch."""
        self.replay.inject_next(**injection)

    def pop_injection(self) -> dict[str, Any]:
        return self.replay.pop_injection()

    def match(self, pattern: RequestPattern) -> Exchange | None:
        return self.replay.match(pattern, self.stats.unmatched)


__all__ = [
    "CERTIFICATE_AUTH_HEADER",
    "IDENTIFY_RESPONSE",
    "NOT_FOUND_FAULT",
    "FakeWinRMServer",
    "ServerStats",
    "read_users_file",
]
