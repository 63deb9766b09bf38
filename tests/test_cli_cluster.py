"""``--cluster`` at the command line: each job listed once and acted on once, on the node that has it.

Two fake nodes: one answers for the cluster and its jobs, the other (its own server, the same
users) knows the cluster but has no job, as a node that does not own a job in a namespace that
shows only a node's own jobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import SCENARIOS, job_id
from hvjob.fanout import HostTarget, cluster_targets
from hvjob.scenario import load_scenarios
from hvjob.testing import FakeWinRMServer
from test_cli import as_json, host, hvjob, invokes

ARGS = ["--scheme", "http", "-u", "alice", "--output", "json"]


@pytest.fixture
def empty_node(users_file: Path) -> Iterator[FakeWinRMServer]:
    """A node that answers MSCluster_Node but has none of the jobs."""
    only_cluster = [s for s in load_scenarios(SCENARIOS) if s.name == "cluster_nodes"]
    with FakeWinRMServer(only_cluster, users_file=users_file) as server:
        yield server


def _cluster(first: FakeWinRMServer, second: FakeWinRMServer, third: FakeWinRMServer) -> list[str]:
    """HVNODE01..03 (as MSCluster_Node names them) resolved to the three servers."""
    return [
        arg
        for name, server in (("HVNODE01", first), ("HVNODE02", second), ("HVNODE03", third))
        for arg in ("--resolve", f"{name}={host(server)}")
    ]


def test_stop_acts_once_on_the_node_that_has_the_job(http_server: FakeWinRMServer, empty_node: FakeWinRMServer) -> None:
    resolve = _cluster(empty_node, http_server, http_server)  # the job is on HVNODE02 (and visible on 03)
    proc = hvjob(*ARGS, *resolve, "--cluster", "stop", host(empty_node), "--job", job_id(0x500))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = as_json(proc)
    assert [(r["host"], r["status"], r["changed"]) for r in doc["results"]] == [
        ("HVNODE01", "ok", False),
        ("HVNODE02", "ok", True),
        ("HVNODE03", "ok", False),
    ]
    assert "not on this node" in doc["results"][0]["notes"][0] and doc["results"][0]["found"] is False
    assert "handled once, on HVNODE02" in doc["results"][2]["notes"][0]
    assert invokes(http_server) == ["RequestStateChange"] and invokes(empty_node) == []
    assert doc["summary"]["job_found_on"] == ["HVNODE02", "HVNODE03"]


@pytest.mark.parametrize(
    ("command", "job", "extra"),
    [("show", 0x360, []), ("wait", 0x360, ["--timeout", "30"]), ("errors", 0x371, [])],
)
def test_reads_report_the_job_from_the_node_that_has_it(
    http_server: FakeWinRMServer, empty_node: FakeWinRMServer, command: str, job: int, extra: list[str]
) -> None:
    resolve = _cluster(empty_node, http_server, empty_node)
    proc = hvjob(*ARGS, *resolve, "--cluster", command, host(empty_node), "--job", job_id(job), *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the nodes without the job are not failures
    results = as_json(proc)["results"]
    assert [r["status"] for r in results] == ["ok", "ok", "ok"]
    answered = results[1]
    assert answered["host"] == "HVNODE02" and answered["found"] is True
    if command == "errors":
        assert len(answered["errors"]) == 2
    else:
        assert answered["properties"]["InstanceID"] == job_id(job)
    assert results[0]["found"] is False and results[2]["found"] is False


def test_a_job_on_no_node_is_not_found(http_server: FakeWinRMServer, empty_node: FakeWinRMServer) -> None:
    resolve = _cluster(empty_node, empty_node, empty_node)
    proc = hvjob(*ARGS, *resolve, "--cluster", "show", host(empty_node), "--job", job_id(0x360))
    assert proc.returncode == 1
    assert {r["error"]["type"] for r in as_json(proc)["results"]} == {"wsman_fault"}


def test_list_prints_each_job_once(http_server: FakeWinRMServer) -> None:
    where = host(http_server)
    resolve = [arg for n in (1, 2, 3) for arg in ("--resolve", f"HVNODE0{n}={where}")]
    proc = hvjob(*ARGS, *resolve, "--cluster", "list", where)
    assert proc.returncode == 0, proc.stderr
    doc = as_json(proc)
    listed = [job["InstanceID"] for r in doc["results"] for job in r["jobs"]]
    assert len(listed) == len(set(listed)) == 5 and doc["summary"]["jobs"] == 5
    assert [len(r["jobs"]) for r in doc["results"]] == [5, 0, 0]  # under the node that listed them first
    text = hvjob(*ARGS[:-2], *resolve, "--cluster", "list", where).stdout
    assert sum(job_id(0x400) in line for line in text.splitlines()) == 1


def test_stop_all_stops_each_job_once(http_server: FakeWinRMServer) -> None:
    where = host(http_server)
    resolve = [arg for n in (1, 2, 3) for arg in ("--resolve", f"HVNODE0{n}={where}")]
    proc = hvjob(*ARGS, *resolve, "--cluster", "stop", where, "--all", "--yes", "--state", "running")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = as_json(proc)
    stopped = [job["job"] for r in doc["results"] for job in r["jobs"]]
    assert stopped == [job_id(0x400), job_id(0x401), job_id(0x404)]  # once each, though every node lists them
    assert [r["host"] for r in doc["results"] if r["jobs"]] == ["HVNODE01"]


def test_cluster_discovery_failure_says_what_failed(empty_node: FakeWinRMServer, users_file: Path) -> None:
    no_cluster = [s for s in load_scenarios(SCENARIOS) if s.name != "cluster_nodes"]
    with FakeWinRMServer(no_cluster, users_file=users_file) as plain:
        proc = hvjob(*ARGS, "--cluster", "list", host(plain))
    assert proc.returncode == 1
    message = as_json(proc)["results"][0]["error"]["message"]
    assert "cluster discovery (MSCluster_Node in root/MSCluster) failed" in message


def test_discovered_nodes_are_reached_like_the_seed() -> None:
    from conftest import options

    seed = HostTarget("seed", "10.0.0.5:15985", options(scheme="http"))
    targets = cluster_targets(seed, ["HVNODE01", "HVNODE02"], {"HVNODE02": "127.0.0.1:9"}, "contoso.test")
    assert [t.address for t in targets] == ["http://HVNODE01.contoso.test:15985/wsman", "127.0.0.1:9"]
    https = cluster_targets(HostTarget("s", "https://n1:6000/wsman", options()), ["N2"], {}, None)
    assert https[0].address == "https://N2:6000/wsman"
