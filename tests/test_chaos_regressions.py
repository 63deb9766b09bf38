"""What the chaos run (tests/chaos_engine.py) and the model-based test (tests/test_model.py) found,
each kept as an explicit test that failed before its fix. Each names the run and operation (or
the shrunk example) it came from."""

from __future__ import annotations

import json
import os
import subprocess

from chaos_engine import CLI
from conftest import CANARY_PASSWORD
from hvjob.testing.sim import SimulatedCluster, default
from sim_helpers import job_client


def hvjob(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess, as alice (the cluster fixture's account)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVJOB_")}
    env["HVJOB_PASSWORD"] = CANARY_PASSWORD
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert "Traceback" not in proc.stderr and CANARY_PASSWORD not in proc.stdout + proc.stderr
    return proc


def test_a_read_whose_reply_is_cut_short_twice_failed_but_the_host_was_reached(cluster: SimulatedCluster) -> None:
    """Chaos run, seed 4, op 937: ``close_mid_response`` on a stop's Get and on its retry. The node
    sent each reply's status line, headers and half its body, and hvjob reported the host
    unreachable (exit 3), which docs/cli.md keeps for a host that answered nothing."""
    cluster.inject(node="HVNODE01", method="Get", kind="close", close="mid_response", count=2)
    with job_client(cluster, "HVNODE01") as client:
        result = client.stop(default.RUNNING)
    assert result.error is not None and result.error.type == "connection", result.to_dict()
    assert not result.error.unreachable and result.status == "failed"
    assert result.changed is False and cluster.log() == []
    assert [(f["request"], f["kind"]) for f in cluster.fault_log()] == [("Get", "close"), ("Get", "close")]

    cluster.inject(node="HVNODE01", method="Get", kind="close", close="mid_response", count=2)
    proc = hvjob("--scheme", "http", "-u", "alice", "--output", "json", "show", cluster.resolve["HVNODE01"],
                 "--job", default.RUNNING)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr  # failed; 3 is for hosts that answered nothing
    assert json.loads(proc.stdout)["summary"] == {"ok": 0, "failed": 1, "unreachable": 0, "job_found_on": []}


def test_a_host_that_answered_nothing_is_still_unreachable(cluster: SimulatedCluster) -> None:
    """The other side of the fix above: a connection closed with no reply, twice, and a listener gone."""
    cluster.inject(node="HVNODE01", method="Get", kind="drop_before_execute", count=2)
    with job_client(cluster, "HVNODE01") as client:
        dropped = client.show(default.RUNNING)
        cluster.stop_listening("HVNODE01")
        refused = client.show(default.RUNNING)
    assert dropped.status == "unreachable" and refused.status == "unreachable"
