"""bench/run.py keeps working: a tiny run, checked for its shape and that every call succeeded.
No timing is asserted here (timings belong to the benchmark's own output)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

pytest.importorskip("pypsrp", reason="the benchmark compares against pypsrp (pip install '.[bench]')")


def test_bench_runs_and_reports_every_figure() -> None:
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--json", "--calls", "5", "--repeats", "1"]
    command += ["--latency-ms", "5", "--nodes", "1,3", "--fanout-repeats", "1", "--fresh-sessions", "3"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert set(report["per_call"]) >= {"hvjob_per_s", "pywinrm_bare_per_s", "pypsrp_per_s", "hvjob_vs_pywinrm_bare"}
    assert all(report["per_call"][k] > 0 for k in ("hvjob_per_s", "pywinrm_bare_per_s", "pypsrp_per_s"))
    rows = report["fanout"]
    assert [row["nodes"] for row in rows] == [1, 3]
    for row in rows:
        assert set(row) >= {"nodes", "latency_ms", "wall_s", "ideal_s", "pywinrm_pool_wall_s", "peak_rss_mb"}
        assert row["ok"] == row["threads_only_ok"] == row["pywinrm_ok"] == row["nodes"]  # every node was stopped
        assert row["processes"] >= 1 and row["client_cpu_s"] > 0
        assert row["exchanges_per_node"] == 4  # NTLM negotiate and authenticate legs, Get, RequestStateChange
    assert report["kill_scaling"]["fifty_nodes_s"] > 0
    fresh = report["fresh_sessions"]
    # Counted by the fleet: hvjob sends the Negotiate token with its first request; pywinrm and
    # pypsrp first draw the 401 challenge with an anonymous request.
    assert fresh["exchanges"] == {
        "hvjob": {"kill": 3, "stop": 4},
        "pywinrm": {"kill": 4, "stop": 5},
        "pypsrp": {"kill": 4, "stop": 5},
    }
    assert all(fresh["cpu_ms_per_stop"][name] > 0 for name in ("hvjob", "pywinrm", "pypsrp"))
    for row in rows:
        assert row["pywinrm_pool_exchanges_per_node"] == 5 and row["wall_vs_pywinrm_pool"] > 0
    assert report["goals"]["fanout_100_within_1_3x_ideal"] is None  # not measured in this tiny run
