"""A play across a 200-node simulated cluster with forks 50: one job stopped once, on its node, and
a job_info sweep that matches the simulator's ground truth on every node. The workloads are
bench/ansible.py's (it reports their timings; this only checks that they are right), run once."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from conftest import ROOT

pytest.importorskip("ansible", reason="ansible-core is not installed")
NODES, FORKS = 200, 50


def _bench_module() -> ModuleType:
    """bench/ansible.py under another name (as ``ansible`` it would shadow ansible-core)."""
    spec = importlib.util.spec_from_file_location("hvjob_bench_ansible", ROOT / "bench" / "ansible.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench_ansible = _bench_module()


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with bench_ansible.Bench(tmp_path_factory.mktemp("scale"), NODES, FORKS) as started:
        yield started


def test_a_200_node_play_stops_one_job_once_on_its_node(bench: Any) -> None:
    outcome = bench.ansible_stop(137)
    assert outcome["hosts"] == NODES
    assert outcome["problems"] == []  # each host's result and the simulator's log and job state


def test_a_200_node_job_info_sweep_matches_the_ground_truth(bench: Any) -> None:
    outcome = bench.ansible_sweep()
    assert outcome["hosts"] == NODES and outcome["jobs"] > 0
    assert outcome["problems"] == []


def test_the_cli_does_the_same_work_and_is_checked_the_same_way(bench: Any) -> None:
    stopped = bench.cli_stop(42)
    assert stopped["hosts"] == NODES and stopped["problems"] == []
    swept = bench.cli_sweep()
    assert swept["hosts"] == NODES and swept["problems"] == []


def test_a_wrong_answer_is_a_problem(bench: Any) -> None:
    """The checks can fail: a job that the CLI has stopped already is not changed again by the
    play, which the stop workload reports, for its node and in the simulator's log."""
    assert bench.cli_stop(99)["problems"] == []
    again = bench.ansible_stop(99)
    assert "methods executed: []" in again["problems"]
    assert any(p.startswith(f"{bench.nodes[98]}: ") for p in again["problems"])
    assert len(again["problems"]) == 2  # every other node is as expected
