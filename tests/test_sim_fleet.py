"""A thousand simulated nodes in one fleet process, with the ground truth read over its stdin."""

from __future__ import annotations

from pathlib import Path

from conftest import CANARY_PASSWORD
from hvjob.fanout import HostTarget, run
from hvjob.testing.fleet import FleetProcess
from hvjob.testing.sim import default
from hvjob.transport import ConnectionOptions


def test_a_thousand_nodes_answer_and_their_ground_truth_is_readable(tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text(f":alice:{CANARY_PASSWORD}\n")
    with FleetProcess(users, 1000, simulate=True) as fleet:
        assert len(fleet.nodes) == len(set(fleet.nodes.values())) == 1000
        assert len(fleet.ports) == 1000
        assert len(fleet.jobs()) == 6 + 1000
        options = ConnectionOptions(username="alice", password=CANARY_PASSWORD, scheme="http", operation_timeout=10)
        picked = [1, 500, 1000]
        targets = [HostTarget(f"HVNODE{n:04d}", fleet.nodes[f"HVNODE{n:04d}"], options) for n in picked]
        by_url = {t.address: default.node_job_id(n) for t, n in zip(targets, picked, strict=True)}
        by_host = {t.name: default.node_job_id(n) for t, n in zip(targets, picked, strict=True)}
        report = run("stop", targets, lambda c: c.stop(by_url[c.host]), concurrency=3, processes=1)
        assert [r.changed for r in report.results] == [True, True, True], [r.to_dict() for r in report.results]
        truth = {job["id"]: job for job in fleet.jobs()}
        assert all(truth[job]["state"] == "Killed" for job in by_host.values())
        assert sorted((e["node"], e["job"]) for e in fleet.log()) == sorted(by_host.items())
        before = fleet.jobs()
        fleet.advance(3600)
        completed = {job["id"]: job["state"] for job in fleet.jobs()}
        assert completed[default.LONG_RUNNING] == "Completed" and before[1]["state"] == "Running"
        assert fleet.stats()["invokes"] == 3
