"""hvjob: control Hyper-V cluster jobs over WS-Management from Linux.

The one obvious way in::

    import hvjob

    with hvjob.connect("hvnode01.contoso.test", username="CONTOSO\\\\admin", password=secret) as client:
        result = client.stop(job_id, wait=True)

The public names are importable from here.
"""

from __future__ import annotations

from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("hvjob")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

from hvjob.errors import HvjobError
from hvjob.fanout import FanoutReport, HostTarget, run
from hvjob.jobs import DEFAULT_CLASS, DEFAULT_NAMESPACE, Job, JobClient, JobFilter, JobState, OperationResult
from hvjob.transport import ConnectionOptions, WsmanSession


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
    base = options or ConnectionOptions()
    given: dict[str, Any] = {k: v for k, v in {"username": username, "password": password}.items() if v is not None}
    session = WsmanSession(host, replace(base, **given, **connection))
    return JobClient(
        session, namespace=namespace or DEFAULT_NAMESPACE, class_name=class_name or DEFAULT_CLASS, check=check
    )


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
