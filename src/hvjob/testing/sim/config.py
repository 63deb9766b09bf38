"""The cluster file (``hvjob serve --simulate CLUSTER.yml``) and the job fields it shares with the API.

Every mistake is a :class:`~hvjob.errors.UsageError` that names the file, the line and the field
(``cluster.yml:12: jobs[1].state: 'Runing' is not a job state ...``). The same checks apply to a
job added with ``POST /_hvjob/jobs`` or :meth:`SimulatedCluster.add_job`, without a line.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hvjob.errors import UsageError
from hvjob.jobs import JobState
from hvjob.testing.sim.model import (
    CLUSTER_NAMESPACE,
    DEFAULT_TIME_BEFORE_REMOVAL,
    EXPORT_JOB,
    JOB_CLASSES,
    LOCAL_NAMESPACE,
    ClusterSpec,
    JobSpec,
    canonical_namespace,
)
from hvjob.testing.sim.profile import Profile

CLUSTER_FIELDS = ("cluster", "nodes", "speed", "profile", "jobs", "start")
JOB_FIELDS = (
    "id",
    "node",
    "class",
    "namespace",
    "state",
    "percent",
    "runs_for",
    "ends",
    "error_code",
    "error_description",
    "cancellable",
    "delete_on_completion",
    "time_before_removal",
    "elapsed",
    "name",
    "owner",
    "export_directory",
    "collection_id",
    "reference_point_group_id",
    "virtual_machine_ids",
    "job_type",
    "migration_type",
    "destination_host",
    "virtual_system_name",
)
_ENDS = (JobState.COMPLETED, JobState.EXCEPTION, JobState.COMPLETED_WITH_WARNINGS)

Where = Callable[[str], str]  # field -> "file:line: field" (or just the field)


class _LineDict(dict[str, Any]):
    """A mapping that remembers the line of each key (and its own) in the YAML it came from."""

    line: int = 0
    lines: dict[str, int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _LineDict:
    mapping = _LineDict({str(k): v for k, v in loader.construct_mapping(node, deep=True).items()})
    mapping.line = node.start_mark.line + 1
    mapping.lines = {str(key.value): key.start_mark.line + 1 for key, _ in node.value}
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _where(source: str | None, data: Mapping[str, Any], prefix: str = "") -> Where:
    def at(name: str) -> str:
        label = f"{prefix}{name}" if name else prefix.rstrip(".")
        if source is None:
            return label
        lines = getattr(data, "lines", {})
        line = lines.get(name, getattr(data, "line", 0))
        return f"{source}:{line}: {label}" if line else f"{source}: {label}"

    return at


def load_cluster_file(path: Path | str) -> ClusterSpec:
    """Read and check a cluster file; a UsageError names the file, line and field of any mistake."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read cluster file {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 (a SafeLoader subclass that records lines)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from exc
    if not isinstance(data, Mapping):
        raise UsageError(f"{path}: a cluster file is a mapping with 'cluster', 'nodes' and 'jobs'")
    return cluster_spec(data, source=str(path))


def cluster_spec(data: Mapping[str, Any], *, source: str | None = None) -> ClusterSpec:
    where = _where(source, data)
    for key in data:
        if key not in CLUSTER_FIELDS:
            raise UsageError(f"{where(str(key))}: unknown field (known: {', '.join(CLUSTER_FIELDS)})")
    name = data.get("cluster", "HVCLUSTER")
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{where('cluster')}: expected the cluster's name")
    nodes = node_names(data.get("nodes", 3), where("nodes"))
    speed = _number(data.get("speed", 1.0), where("speed"), minimum=0.0)
    profile_data = data.get("profile") or {}
    if not isinstance(profile_data, Mapping):
        raise UsageError(f"{where('profile')}: expected a mapping of switch: value")
    profile = Profile.from_mapping(profile_data, where=where("profile"))
    start = data.get("start")
    if start is not None:
        start = _datetime(start, where("start"))
    raw_jobs = data.get("jobs") or []
    if not isinstance(raw_jobs, Sequence) or isinstance(raw_jobs, str):
        raise UsageError(f"{where('jobs')}: expected a list of jobs")
    jobs: list[JobSpec] = []
    seen: set[str] = set()
    for index, item in enumerate(raw_jobs):
        if not isinstance(item, Mapping):
            raise UsageError(f"{where('jobs')}: job {index} is not a mapping")
        job = job_spec(item, nodes, _where(source, item, f"jobs[{index}]."), default_id=_stable_id(name, index))
        if job.id.lower() in seen:
            raise UsageError(f"{_where(source, item, f'jobs[{index}].')('id')}: {job.id} is listed twice")
        seen.add(job.id.lower())
        jobs.append(job)
    return ClusterSpec(name.strip(), tuple(nodes), tuple(jobs), speed, profile, start, source)


def node_names(value: Any, where: str) -> list[str]:
    """``[HVNODE01, ...]``, or a count N for HVNODE01..HVNODE0N (four digits from 1,000 nodes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise UsageError(f"{where}: a cluster needs at least one node")
        width = max(2, len(str(value)))
        return [f"HVNODE{n:0{width}d}" for n in range(1, value + 1)]
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise UsageError(f"{where}: expected a list of node names or a number of nodes")
    names: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or any(c in item for c in " /\\:"):
            raise UsageError(f"{where}: {item!r} is not a node name")
        if item.lower() in (n.lower() for n in names):
            raise UsageError(f"{where}: {item} is listed twice")
        names.append(item.strip())
    return names


def _stable_id(cluster: str, index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"hvjob-sim:{cluster}:{index}")).upper()


def job_spec(data: Mapping[str, Any], nodes: Sequence[str], where: Where, *, default_id: str | None = None) -> JobSpec:
    """A JobSpec from the cluster file's or the control API's fields, checked."""
    for key in data:
        if key not in JOB_FIELDS:
            raise UsageError(f"{where(str(key))}: unknown field (known: {', '.join(JOB_FIELDS)})")
    job_id = data.get("id", default_id)
    if not isinstance(job_id, str) or not job_id.strip():
        raise UsageError(f"{where('id')}: expected the job's InstanceID")
    node = data.get("node", nodes[0])
    match = next((n for n in nodes if isinstance(node, str) and n.lower() == node.lower()), None)
    if match is None:
        raise UsageError(f"{where('node')}: {node!r} is not one of the nodes ({', '.join(nodes[:10])})")
    class_name = data.get("class", EXPORT_JOB)
    canonical = next((c for c in JOB_CLASSES if isinstance(class_name, str) and c.lower() == class_name.lower()), None)
    if canonical is None:
        raise UsageError(f"{where('class')}: {class_name!r} is not one of {', '.join(JOB_CLASSES)}")
    namespace = canonical_namespace(str(data.get("namespace", CLUSTER_NAMESPACE)))
    if namespace not in (CLUSTER_NAMESPACE, LOCAL_NAMESPACE):
        raise UsageError(f"{where('namespace')}: expected {CLUSTER_NAMESPACE} or {LOCAL_NAMESPACE}")
    state = _state(data.get("state", "Running"), where("state"))
    ends = _state(data.get("ends", "Completed"), where("ends"))
    if ends not in _ENDS:
        raise UsageError(f"{where('ends')}: a job ends Completed, Exception or Completed with Warnings")
    runs_for = data.get("runs_for")
    vm_ids = data.get("virtual_machine_ids", ())
    if isinstance(vm_ids, str) or not isinstance(vm_ids, Sequence) or not all(isinstance(v, str) for v in vm_ids):
        raise UsageError(f"{where('virtual_machine_ids')}: expected a list of VM GUIDs")
    error_code = data.get("error_code")
    return JobSpec(
        id=job_id.strip(),
        node=match,
        class_name=canonical,
        namespace=namespace,
        state=state,
        percent=int(_number(data.get("percent", 100 if state == JobState.COMPLETED else 0), where("percent"), 0, 100)),
        runs_for=None if runs_for is None else _number(runs_for, where("runs_for"), minimum=0.0),
        ends=ends,
        error_code=None if error_code is None else int(_number(error_code, where("error_code"), 0, 65535)),
        error_description=_text(data.get("error_description"), where("error_description")),
        cancellable=_bool(data.get("cancellable", True), where("cancellable")),
        delete_on_completion=_bool(data.get("delete_on_completion", False), where("delete_on_completion")),
        time_before_removal=_number(
            data.get("time_before_removal", DEFAULT_TIME_BEFORE_REMOVAL), where("time_before_removal"), minimum=0.0
        ),
        elapsed=_number(data.get("elapsed", 0), where("elapsed"), minimum=0.0),
        name=_text(data.get("name"), where("name")),
        owner=_text(data.get("owner", "CONTOSO\\backup-svc"), where("owner")),
        export_directory=_text(
            data.get("export_directory", "C:\\ClusterStorage\\Volume1\\Backup\\VMGroup1"), where("export_directory")
        ),
        collection_id=_text(data.get("collection_id", "0E6F5B4C-3D2A-4B19-8F07-6A5D4C3B2A19"), where("collection_id")),
        reference_point_group_id=_text(
            data.get("reference_point_group_id", "9A8B7C6D-5E4F-4A3B-8C2D-1E0F9A8B7C6D"),
            where("reference_point_group_id"),
        ),
        virtual_machine_ids=tuple(vm_ids),
        job_type=_optional_int(data.get("job_type"), where("job_type")),
        migration_type=_optional_int(data.get("migration_type"), where("migration_type")),
        destination_host=_text(data.get("destination_host"), where("destination_host")),
        virtual_system_name=_text(data.get("virtual_system_name"), where("virtual_system_name")),
    )


def _state(value: Any, where: str) -> JobState:
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return JobState(value)
        return JobState.parse(str(value))
    except (UsageError, ValueError) as exc:
        names = ", ".join(s.label for s in JobState)
        raise UsageError(f"{where}: {value!r} is not a job state (one of {names})") from exc


def _number(value: Any, where: str, minimum: float | None = None, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{where}: expected a number, not {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"from {minimum:g}" + (f" to {maximum:g}" if maximum is not None else "")
        raise UsageError(f"{where}: {value} is out of range ({bounds})")
    return float(value)


def _optional_int(value: Any, where: str) -> int | None:
    return None if value is None else int(_number(value, where, 0, 65535))


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{where}: expected true or false, not {value!r}")
    return value


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{where}: expected text, not {value!r}")
    return value


def _datetime(value: Any, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"{where}: expected an ISO 8601 time such as 2026-11-25T03:00:00Z") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
