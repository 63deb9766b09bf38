"""The ``hvjob`` command against the simulated cluster, each outcome checked against its ground truth.

What the command reported (text, JSON, exit status) is compared with what the simulator's
providers executed (its method log) and the jobs' states afterwards: ``changed`` true only where a
mutating method ran and was accepted, nothing sent in check mode, each job acted on once on a
cluster. Scenario replay (test_cli.py) stays for one-off answers such as every KillJob value.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from conftest import CANARY_PASSWORD
from hvjob.testing.sim import SimulatedCluster, default
from test_cli import HVJOB, hvjob

ARGS = ["--scheme", "http", "-u", "alice"]


def resolve(cluster: SimulatedCluster) -> list[str]:
    return [arg for node, where in cluster.resolve.items() for arg in ("--resolve", f"{node}={where}")]


def node(cluster: SimulatedCluster, name: str) -> str:
    return cluster.resolve[name]


def doc(*args: str) -> tuple[int, dict[str, Any]]:
    proc = hvjob(*ARGS, "--output", "json", *args)
    return proc.returncode, json.loads(proc.stdout)


def methods(cluster: SimulatedCluster, job: str | None = None) -> list[tuple[str, str]]:
    """(node, method) of every method the simulator executed (for ``job``)."""
    return [(e["node"], e["method"]) for e in cluster.log() if job is None or e["job"] == job]


def test_stop_changes_then_is_unchanged_in_text_and_json(cluster: SimulatedCluster) -> None:
    first = hvjob(*ARGS, "stop", node(cluster, "HVNODE01"), "--job", default.RUNNING, "--wait")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert re.match(r"HOST\s+STATUS\s+CHANGED\s+CALL\s+JOB STATE\s+DETAIL$", lines[0])
    assert re.search(r"ok\s+yes\s+RequestStateChange returned 0 \(Completed\)\s+Killed", lines[1])
    assert lines[-1].startswith("ok=1 failed=0 unreachable=0")
    assert (
        methods(cluster) == [("HVNODE01", "RequestStateChange")] and cluster.job(default.RUNNING)["state"] == "Killed"
    )

    code, second = doc("stop", node(cluster, "HVNODE01"), "--job", default.RUNNING)
    assert code == 0
    result = second["results"][0]
    assert (result["changed"], result["job_state"], result["method"], result["found"]) == (False, "Killed", "Get", True)
    assert [r["request"] for r in result["requests"]] == ["Get"]
    assert second["summary"] == {"ok": 1, "failed": 0, "unreachable": 0, "job_found_on": [node(cluster, "HVNODE01")]}
    assert len(methods(cluster)) == 1  # nothing more was sent


def test_a_stop_without_wait_reports_no_properties_from_before_it(cluster: SimulatedCluster) -> None:
    code, report = doc("stop", node(cluster, "HVNODE01"), "--job", default.RUNNING)
    result = report["results"][0]
    assert code == 0 and result["changed"] is True and cluster.job(default.RUNNING)["state"] == "Killed"
    assert result["job_state"] is None and "properties" not in result  # the Get's JobState 4 is no longer true


def test_check_mode_sends_nothing_mutating(cluster: SimulatedCluster) -> None:
    code, report = doc("--check", "stop", node(cluster, "HVNODE01"), "--job", default.RUNNING)
    result = report["results"][0]
    assert code == 0 and (result["changed"], result["would_change"]) == (False, True)
    assert result["notes"] == ["would call RequestStateChange"]
    code, report = doc("--check", "kill", node(cluster, "HVNODE01"), "--job", default.COMPLETED)
    result = report["results"][0]  # kill sends KillJob to a finished job too: check mode says so
    assert code == 0 and (result["changed"], result["would_change"]) == (False, True)
    assert result["notes"] == ["would call KillJob", "the job is already Completed: Hyper-V may refuse KillJob (32775)"]
    text = hvjob(*ARGS, "--check", "stop", node(cluster, "HVNODE01"), "--job", default.RUNNING).stdout
    assert re.search(r"ok\s+would\s+RequestStateChange", text)
    # stop --all across the cluster: the host's would_change is that of the jobs it would stop.
    code, report = doc("--check", *resolve(cluster), "--cluster", "stop", "HVNODE01", "--all", "--yes")
    by_host = {r["host"]: r for r in report["results"]}
    assert by_host["HVNODE01"]["would_change"] is True and by_host["HVNODE01"]["changed"] is False
    assert by_host["HVNODE01"]["method"] is None  # the host did no call of its own; each job's is in jobs
    assert [j["would_change"] for j in by_host["HVNODE01"]["jobs"]] == [True]
    text = hvjob(*ARGS, *resolve(cluster), "--check", "--cluster", "stop", "HVNODE01", "--all", "--yes").stdout
    assert "HVNODE01: jobs selected" in text
    assert methods(cluster) == [] and cluster.job(default.RUNNING)["state"] == "Running"


def test_stop_all_stops_the_running_and_leaves_the_uncancellable_untouched(cluster: SimulatedCluster) -> None:
    code, listed = doc("list", node(cluster, "HVNODE03"), "--state", "Running")
    assert code == 0
    assert {j["InstanceID"] for j in listed["results"][0]["jobs"]} == {default.COMPLETING, default.NOT_CANCELLABLE}
    code, stopped = doc("stop", node(cluster, "HVNODE03"), "--all", "--yes")
    assert code == 1  # the not-cancellable job fails, with nothing sent
    jobs = {j["job"]: j for j in stopped["results"][0]["jobs"]}
    assert jobs[default.COMPLETING]["changed"] is True
    assert (
        jobs[default.NOT_CANCELLABLE]["changed"] is False and jobs[default.NOT_CANCELLABLE]["error"]["type"] == "method"
    )
    assert "the force option sends it anyway" in jobs[default.NOT_CANCELLABLE]["error"]["message"]  # the library's
    text = hvjob(*ARGS, "stop", node(cluster, "HVNODE03"), "--job", default.NOT_CANCELLABLE).stdout
    assert "nothing was sent (--force sends it anyway)" in text  # the CLI's words for it
    assert methods(cluster) == [("HVNODE03", "RequestStateChange")]
    assert methods(cluster, default.COMPLETING) == [("HVNODE03", "RequestStateChange")]
    assert cluster.job(default.NOT_CANCELLABLE)["state"] == "Running"


def test_stop_across_the_cluster_acts_once_on_the_owner(cluster: SimulatedCluster) -> None:
    code, report = doc(*resolve(cluster), "--cluster", "stop", "HVNODE02", "--job", default.RUNNING)
    assert code == 0
    assert [(r["host"], r["changed"]) for r in report["results"]] == [
        ("HVNODE01", True),
        ("HVNODE02", False),
        ("HVNODE03", False),
    ]
    assert methods(cluster) == [("HVNODE01", "RequestStateChange")]
    assert report["summary"]["job_found_on"] == ["HVNODE01"]
    assert all(r["elapsed_ms"] > 0 for r in report["results"])  # the nodes that only read it took time too


def test_every_node_sees_every_job_and_each_is_still_acted_on_once(cluster: SimulatedCluster) -> None:
    cluster.set_profile(jobs_visible_on="every-node")
    code, listed = doc(*resolve(cluster), "--cluster", "list", "HVNODE01")
    assert code == 0
    ids = [j["InstanceID"] for r in listed["results"] for j in r["jobs"]]
    assert len(ids) == len(set(ids)) == 6 and [len(r["jobs"]) for r in listed["results"]] == [6, 0, 0]
    code, stopped = doc(*resolve(cluster), "--cluster", "stop", "HVNODE01", "--all", "--yes", "--state", "Running")
    assert code == 1  # NOT_CANCELLABLE
    assert [r["host"] for r in stopped["results"] if r["jobs"]] == ["HVNODE01"]  # all under the first lister
    executed = [e["job"] for e in cluster.log()]
    assert sorted(executed) == sorted({default.RUNNING, default.LONG_RUNNING, default.COMPLETING})  # once each


def test_wait_errors_show_identify(cluster: SimulatedCluster) -> None:
    cluster.advance(40)  # COMPLETING ends
    code, waited = doc("wait", node(cluster, "HVNODE03"), "--job", default.COMPLETING, "--timeout", "5")
    assert code == 0 and waited["results"][0]["succeeded"] is True
    assert waited["results"][0]["properties"]["JobState"] == 7
    code, errs = doc("errors", node(cluster, "HVNODE02"), "--job", default.FAILED)
    assert code == 0 and errs["results"][0]["errors"][0]["Message"] == default.FAILED_DESCRIPTION
    code, shown = doc("show", node(cluster, "HVNODE01"), "--job", default.RUNNING)
    assert code == 0 and shown["results"][0]["properties"]["Owner"] == default.OWNER
    for extra in ([], ["--anonymous"]):
        code, ident = doc("identify", node(cluster, "HVNODE01"), *extra)
        assert code == 0 and ident["results"][0]["identity"]["product_vendor"] == "Microsoft Corporation"
    assert methods(cluster) == [("HVNODE02", "GetErrorEx")]  # reads sent no mutating method


def test_a_wait_that_runs_out_of_time_exits_4_with_the_job_still_running(cluster: SimulatedCluster) -> None:
    code, report = doc("wait", node(cluster, "HVNODE02"), "--job", default.LONG_RUNNING, "--timeout", "0.5")
    assert code == 4 and report["results"][0]["error"]["type"] == "wait_timeout"
    assert report["results"][0]["job_state"] == "Running" and cluster.job(default.LONG_RUNNING)["state"] == "Running"


def test_kill_of_a_finished_job_is_refused_and_reported_unchanged(cluster: SimulatedCluster) -> None:
    code, report = doc("kill", node(cluster, "HVNODE01"), "--job", default.COMPLETED)
    result = report["results"][0]
    assert code == 1 and result["changed"] is False and result["return_value"] == 32775
    assert methods(cluster) == [("HVNODE01", "KillJob")] and cluster.job(default.COMPLETED)["state"] == "Completed"


def test_a_typed_job_id_on_no_node(cluster: SimulatedCluster) -> None:
    code, report = doc(*resolve(cluster), "--cluster", "stop", "HVNODE01", "--job", "0D2F5C1A-typo")
    assert code == 0 and all(r["gone"] and r["changed"] is False for r in report["results"])  # missing_ok
    code, report = doc(*resolve(cluster), "--cluster", "show", "HVNODE01", "--job", "0D2F5C1A-typo")
    assert code == 1 and report["summary"]["job_found_on"] == []
    assert methods(cluster) == []


def test_a_typo_and_a_finished_job_get_their_hints(cluster: SimulatedCluster) -> None:
    typo = hvjob(*ARGS, "show", node(cluster, "HVNODE01"), "--job", "0D2F5C1A-typo")
    assert typo.returncode == 1 and "job not found (wsman_fault: " in typo.stdout
    assert "no job 0D2F5C1A-typo there: check the id against hvjob list" in typo.stderr
    on_cluster = hvjob(*ARGS, *resolve(cluster), "--cluster", "errors", "HVNODE01", "--job", "0D2F5C1A-typo")
    assert on_cluster.returncode == 1 and "no job 0D2F5C1A-typo" in on_cluster.stdout + on_cluster.stderr
    missing_ok = hvjob(*ARGS, *resolve(cluster), "--cluster", "stop", "HVNODE01", "--job", "0D2F5C1A-typo")
    assert missing_ok.returncode == 0 and "no job 0D2F5C1A-typo there" in missing_ok.stderr  # ok, yet hinted
    found = hvjob(*ARGS, *resolve(cluster), "--cluster", "show", "HVNODE01", "--job", default.RUNNING)
    assert found.returncode == 0 and "hint" not in found.stderr  # the nodes without it are no mistake
    finished = hvjob(*ARGS, "kill", node(cluster, "HVNODE01"), "--job", default.COMPLETED)
    assert finished.returncode == 1 and "already finished or cannot be cancelled" in finished.stderr
    assert methods(cluster) == [("HVNODE01", "KillJob")]


def test_ctrl_c_during_cluster_discovery_is_reported_in_the_output(users_file: Path) -> None:
    with SimulatedCluster(
        users_file=users_file, username="alice", password=CANARY_PASSWORD, speed=0, latency_ms=3000
    ) as slow:
        env = {**os.environ, "HVJOB_PASSWORD": CANARY_PASSWORD}
        argv = [*HVJOB, *ARGS, *resolve(slow), "--output", "json", "--cluster", "stop", "HVNODE01", "--all", "--yes"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 30
        while slow.fronts[0].stats.requests == 0:  # discovery's first request is on the wire
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        logged = slow.log()
    assert proc.returncode == 130, err
    report = json.loads(out)  # one JSON document, as for every other outcome
    (result,) = report["results"]
    assert result["error"]["type"] == "interrupted" and "nothing was changed" in result["error"]["message"]
    assert result["changed"] is False and report["summary"]["interrupted"] is True
    assert logged == [] and "Traceback" not in err


def test_a_second_ctrl_c_with_the_stop_on_the_wire_says_the_job_was_found_and_the_change_unknown(
    cluster: SimulatedCluster,
) -> None:
    cluster.inject(kind="latency_ms", latency_ms=20000, node="HVNODE01", method="RequestStateChange")
    env = {**os.environ, "HVJOB_PASSWORD": CANARY_PASSWORD}
    argv = [*HVJOB, *ARGS, "--output", "json", "stop", node(cluster, "HVNODE01"), "--job", default.RUNNING]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 30
    while not any(entry["method"] == "RequestStateChange" for entry in cluster.log()):  # it ran; the answer waits
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    err = ""
    while "Ctrl-C again" not in err:  # the first Ctrl-C is handled; then the second
        line = proc.stderr.readline()
        assert line, err
        err += line
    proc.send_signal(signal.SIGINT)
    out, rest = proc.communicate(timeout=60)
    err += rest
    assert proc.returncode == 130, err
    (result,) = json.loads(out)["results"]
    assert [(r["request"], r["outcome"]) for r in result["requests"]] == [("Get", "answered"),
                                                                          ("RequestStateChange", "in flight")]  # fmt: skip
    assert result["found"] is True and result["changed"] is None  # the Get saw it; the stop's answer never came
    assert result["method"] == "RequestStateChange"  # the call whose answer is missing
