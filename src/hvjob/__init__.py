"""hvjob: control Hyper-V cluster jobs over WS-Management from Linux.

The one obvious way in::

    import hvjob

    with hvjob.connect("hvnode01.contoso.test", username="CONTOSO\\\\admin", password=secret) as client:
        result = client.stop(job_id, wait=True)

The public names are importable from here; they load on first use, so that ``import hvjob.errors``
(the Ansible modules do) stays cheap.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("hvjob")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from hvjob.errors import HvjobError
    from hvjob.fanout import FanoutReport, HostTarget, run
    from hvjob.jobs import Job, JobClient, JobFilter, JobState, OperationResult
    from hvjob.transport import ConnectionOptions, WsmanSession

_EXPORTS = {
    "ConnectionOptions": "hvjob.transport",
    "WsmanSession": "hvjob.transport",
    "Job": "hvjob.jobs",
    "JobClient": "hvjob.jobs",
    "JobFilter": "hvjob.jobs",
    "JobState": "hvjob.jobs",
    "OperationResult": "hvjob.jobs",
    "FanoutReport": "hvjob.fanout",
    "HostTarget": "hvjob.fanout",
    "run": "hvjob.fanout",
    "HvjobError": "hvjob.errors",
}


def connect(
    host: str,
    *,
    username: str | None = None,
    password: str | None = None,
    options: ConnectionOptions | None = None,
    namespace: str | None = None,
    class_name: str | None = None,
    check: bool = False,
    **connection: Any,
) -> JobClient:
    """A :class:`~hvjob.jobs.JobClient` for ``host``, over one authenticated session.

    ``connection`` takes any :class:`~hvjob.transport.ConnectionOptions` field (``scheme``, ``port``,
    ``ca_trust_path``, ``transport``, ...), or pass ``options`` whole. HTTPS with certificate
    validation is the default. Nothing is sent until the first operation. Use the client as a
    context manager (or call ``close()``) to close the session.
    """
    from dataclasses import replace

    from hvjob.jobs import DEFAULT_CLASS, DEFAULT_NAMESPACE, JobClient
    from hvjob.transport import ConnectionOptions, WsmanSession

    base = options or ConnectionOptions()
    given: dict[str, Any] = {k: v for k, v in {"username": username, "password": password}.items() if v is not None}
    session = WsmanSession(host, replace(base, **given, **connection))
    return JobClient(
        session, namespace=namespace or DEFAULT_NAMESPACE, class_name=class_name or DEFAULT_CLASS, check=check
    )


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hvjob' has no attribute {name!r}")


__all__ = [
    "ConnectionOptions",
    "FanoutReport",
    "HostTarget",
    "HvjobError",
    "Job",
    "JobClient",
    "JobFilter",
    "JobState",
    "OperationResult",
    "WsmanSession",
    "__version__",
    "connect",
    "run",
]
