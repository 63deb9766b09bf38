"""The default simulated cluster: what ``hvjob serve --simulate`` runs without a cluster file.

Three nodes and six jobs whose InstanceIDs are stable and documented (docs/testing.md), so the
demo, the CLI tests and a user's first playbook can name them:

=========================  ==========  =====================================================
id                         node        what
=========================  ==========  =====================================================
``RUNNING``                HVNODE01    a running export, 40 %, runs until stopped
``LONG_RUNNING``           HVNODE02    a running export, 10 %, completes after an hour
``COMPLETING``             HVNODE03    a running export, 75 %, completes after 30 seconds
``COMPLETED``              HVNODE01    a finished export (Completed)
``FAILED``                 HVNODE02    a failed export (Exception, ErrorCode 32768)
``NOT_CANCELLABLE``        HVNODE03    a running export with Cancellable = false
=========================  ==========  =====================================================

With more than three nodes (a scale test), every node also runs one export of its own,
:func:`node_job_id` (its index from 1). Finished jobs stay visible for an hour here, not
Hyper-V's five minutes, so that a demo session does not lose them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hvjob.jobs import JobState
from hvjob.testing.sim.config import node_names
from hvjob.testing.sim.model import ClusterSpec, JobSpec
from hvjob.testing.sim.profile import Profile

DEFAULT_CLUSTER = "HVCLUSTER"
DEFAULT_NODE_COUNT = 3

RUNNING = "0D2F5C1A-7E3B-4A9D-8C2E-000000000001"
LONG_RUNNING = "0D2F5C1A-7E3B-4A9D-8C2E-000000000002"
COMPLETING = "0D2F5C1A-7E3B-4A9D-8C2E-000000000003"
COMPLETED = "0D2F5C1A-7E3B-4A9D-8C2E-000000000004"
FAILED = "0D2F5C1A-7E3B-4A9D-8C2E-000000000005"
NOT_CANCELLABLE = "0D2F5C1A-7E3B-4A9D-8C2E-000000000006"
FAILED_DESCRIPTION = "The export of the reference point failed: there is not enough space on the disk."

OWNER = "CONTOSO\\backup-svc"
VM_IDS = ("6B1F4C2D-0A1B-4C3D-9E8F-00000000A001", "6B1F4C2D-0A1B-4C3D-9E8F-00000000A002")


def node_job_id(index: int) -> str:
    """The running export each node of a cluster larger than three has (``index`` from 1)."""
    return f"0D2F5C1A-7E3B-4A9D-9000-{index:012d}"


def default_jobs(nodes: Sequence[str]) -> list[JobSpec]:
    """The six documented jobs, on nodes 1, 2, 3, 1, 2, 3 (wrapping round fewer nodes)."""

    def on(index: int) -> str:
        return nodes[index % len(nodes)]

    # As a cluster file's jobs default to: the backup service's exports of one VM group.
    common: dict[str, Any] = {
        "virtual_machine_ids": VM_IDS,
        "time_before_removal": 3600.0,
        "owner": OWNER,
        "export_directory": "C:\\ClusterStorage\\Volume1\\Backup\\VMGroup1",
        "collection_id": "0E6F5B4C-3D2A-4B19-8F07-6A5D4C3B2A19",
    }
    jobs = [
        JobSpec(RUNNING, on(0), state=JobState.RUNNING, percent=40, elapsed=252.5, **common),
        JobSpec(LONG_RUNNING, on(1), state=JobState.RUNNING, percent=10, runs_for=3600, elapsed=400, **common),
        JobSpec(COMPLETING, on(2), state=JobState.RUNNING, percent=75, runs_for=30, elapsed=90, **common),
        JobSpec(COMPLETED, on(3), state=JobState.COMPLETED, percent=100, elapsed=610, **common),
        JobSpec(
            FAILED,
            on(4),
            state=JobState.EXCEPTION,
            percent=35,
            elapsed=120,
            error_code=32768,
            error_description=FAILED_DESCRIPTION,
            **common,
        ),
        JobSpec(NOT_CANCELLABLE, on(5), state=JobState.RUNNING, percent=55, cancellable=False, elapsed=30, **common),
    ]
    if len(nodes) > DEFAULT_NODE_COUNT:
        jobs += [
            JobSpec(node_job_id(n), node, state=JobState.RUNNING, percent=20, elapsed=60, **common)
            for n, node in enumerate(nodes, 1)
        ]
    return jobs


def default_cluster_spec(
    nodes: int | Sequence[str] = DEFAULT_NODE_COUNT,
    *,
    name: str = DEFAULT_CLUSTER,
    speed: float = 1.0,
    profile: Profile | Mapping[str, Any] | None = None,
) -> ClusterSpec:
    names = node_names(nodes, "nodes")
    chosen = profile if isinstance(profile, Profile) else Profile.from_mapping(profile)
    return ClusterSpec(name, tuple(names), tuple(default_jobs(names)), speed, chosen)
