"""hvjob's library against every behaviour-profile switch (pairwise), checked against ground truth.

For each profile of a pairwise covering array of :data:`hvjob.testing.sim.SWITCHES`, hvjob's real
calls run over real HTTP, NTLM and message encryption: ``JobClient.stop`` with every method
choice and both modes, ``kill`` (running, finished, skip_terminal), ``wait``, ``errors``, and
``fanout.run`` (a cluster-wide list) and ``fanout.on_job_node`` (stop --cluster) over every
node. Each outcome is compared with the simulator's state and its method log, ``changed``
included (true only when a mutating method ran and was accepted), and with a small oracle that
says what hvjob must do for each way a method can answer. Whatever the profile, every way of
saying "not supported" (ReturnValue 1, 32770, the WMI fault) must make ``stop`` fall back.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from hvjob import errors
from hvjob.fanout import HostTarget, on_job_node, run
from hvjob.jobs import JobState, OperationResult
from hvjob.testing.sim import SWITCHES, Profile, SimulatedCluster, default
from sim_helpers import cluster_options, job_client, pairwise

PROFILES = pairwise(SWITCHES)
KILLJOB_PROFILES = [p for p in PROFILES if p["killjob"] == "supported"]
RSC, KILLJOB = "RequestStateChange", "KillJob"
ORDER = {
    ("auto", "kill"): [RSC, KILLJOB],
    ("auto", "terminate"): [RSC],
    ("request-state-change", "kill"): [RSC],
    ("kill-job", "kill"): [KILLJOB],
    ("kill-job-first", "kill"): [KILLJOB, RSC],
    ("kill-job-first", "terminate"): [KILLJOB, RSC],
}


def _id(profile: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in profile.items() if v != SWITCHES[k][0]) or "defaults"


def test_the_pairwise_rows_cover_every_pair_of_values() -> None:
    for a in SWITCHES:
        for b in SWITCHES:
            if a < b:
                for va in SWITCHES[a]:
                    for vb in SWITCHES[b]:
                        assert any(row[a] == va and row[b] == vb for row in PROFILES), (a, va, b, vb)


# --- the oracle: what hvjob must do for each way a method answers ----------------------------------


def _answer(profile: Profile, method: str, *, cancellable: bool, timeout_period: bool) -> str:
    """ok, not-supported (a ReturnValue), not-supported-fault, or failed (any other refusal)."""
    support = profile.killjob if method == KILLJOB else profile.request_state_change_support
    if support == "faults":
        return "not-supported-fault"
    if support in ("returns-1", "returns-32770"):
        return "not-supported"
    if method == RSC and timeout_period and profile.timeout_period == "not-supported":
        return "failed"
    if not cancellable:
        return "not-supported" if profile.uncancellable == "not-supported" else "failed"
    return "ok"


def expected_stop(
    profile: Profile, method: str, mode: str, *, cancellable: bool = True, timeout_period: bool = False
) -> tuple[list[str], bool, str | None]:
    """The methods stop must send, whether it changed the job, and its error type."""
    order = ORDER[(method, mode)]
    tried: list[str] = []
    for position, name in enumerate(order):
        tried.append(name)
        answer = _answer(profile, name, cancellable=cancellable, timeout_period=timeout_period)
        if answer == "ok":
            return tried, True, None
        if answer == "failed":
            return tried, False, "method"
        if position == len(order) - 1:
            return tried, False, "wsman_fault" if answer == "not-supported-fault" else "method"
    raise AssertionError("unreachable")


def final_state(profile: Profile, method: str, mode: str) -> str:
    if method == RSC and mode == "terminate":
        return "Terminated"
    return profile.killed_state


# --- helpers --------------------------------------------------------------------------------------


def entries(cluster: SimulatedCluster, job_id: str) -> list[dict[str, Any]]:
    return [e for e in cluster.log() if e["job"] == job_id]


def accepted(entry: dict[str, Any]) -> bool:
    return entry["method"] in (RSC, KILLJOB) and entry["return_value"] in (0, 4096)


def settle(cluster: SimulatedCluster) -> None:
    """Let every asynchronous stop reach its final state."""
    cluster.advance(cluster.profile.transition_seconds + 1)


def check_changed(result: OperationResult, cluster: SimulatedCluster, job_id: str) -> None:
    """hvjob's ``changed`` is what happened: true exactly when a mutating call was accepted."""
    log = entries(cluster, job_id)
    assert result.changed == any(accepted(e) for e in log), (result.to_dict(), log)


@pytest.fixture(params=PROFILES, ids=[_id(p) for p in PROFILES])
def cluster(request: pytest.FixtureRequest) -> Any:
    with SimulatedCluster(profile=request.param, speed=0) as running:
        yield running


# --- stop ------------------------------------------------------------------------------------------


def test_stop_with_every_method_choice_matches_the_ground_truth(cluster: SimulatedCluster) -> None:
    profile = cluster.profile
    with job_client(cluster, "HVNODE01") as client:
        for (method, mode), _ in ORDER.items():
            job_id = f"STOP-{method}-{mode}"
            cluster.add_job(id=job_id, node="HVNODE01", state="Running", percent=20)
            result = client.stop(job_id, method=method, mode=mode)  # type: ignore[arg-type]  # ORDER's keys
            tried, changed, error_type = expected_stop(profile, method, mode)
            log = entries(cluster, job_id)
            assert [e["method"] for e in log] == tried, (method, mode, result.to_dict())
            assert result.changed is changed, (method, mode, result.to_dict())
            assert (result.error.type if result.error else None) == error_type, (method, mode, result.to_dict())
            check_changed(result, cluster, job_id)
            settle(cluster)
            state = cluster.job(job_id)["state"]
            if changed:
                assert state == final_state(profile, log[-1]["method"], mode), (method, mode, log)
                assert sum(1 for e in log if e["effect"]) == 1
            else:
                assert state == "Running"
                assert not any(e["effect"] for e in log)


def test_stop_is_idempotent_and_reads_before_acting(cluster: SimulatedCluster) -> None:
    tried, changed, _ = expected_stop(cluster.profile, "auto", "kill")
    with job_client(cluster, "HVNODE01") as client:
        first = client.stop(default.RUNNING)
        settle(cluster)
        second = client.stop(default.RUNNING)
        finished = client.stop(default.COMPLETED)
    log = entries(cluster, default.RUNNING)
    check_changed(first, cluster, default.RUNNING)
    assert first.changed is changed
    if changed:  # the second stop reads a finished job and sends nothing
        assert second.ok and second.changed is False and second.method == "Get"
        assert len(log) == len(tried)
    else:  # nothing worked, so the second stop tries again, and fails the same way
        assert (second.changed, second.error.type if second.error else None) == (
            False,
            first.error and first.error.type,
        )
        assert len(log) == 2 * len(tried)
    assert finished.ok and finished.changed is False and entries(cluster, default.COMPLETED) == []


def test_stop_with_wait_follows_the_job_to_its_final_state(cluster: SimulatedCluster) -> None:
    profile = cluster.profile
    with job_client(cluster, "HVNODE02") as client:
        result = client.stop(default.LONG_RUNNING, wait=True, timeout=120)
    tried, changed, _ = expected_stop(profile, "auto", "kill")
    check_changed(result, cluster, default.LONG_RUNNING)
    truth = cluster.job(default.LONG_RUNNING)
    if not changed:
        assert truth["state"] == "Running" and not result.ok
        return
    assert result.ok, result.to_dict()
    assert result.job_state is not None and result.job_state.label == truth["state"] == profile.killed_state
    trackers = [j for j in cluster.jobs() if j["tracks"] == default.LONG_RUNNING]
    followed = [n for n in result.notes if n.startswith("followed Job")]
    uses_rsc = tried[-1] == RSC
    if uses_rsc and profile.request_state_change == "async":
        assert len(trackers) == 1 and trackers[0]["state"] == "Completed"
        assert followed == [f"followed Job {trackers[0]['id']}: Completed"]
    else:
        assert trackers == [] and followed == []


def test_stop_of_a_job_that_is_not_cancellable(cluster: SimulatedCluster) -> None:
    profile = cluster.profile
    with job_client(cluster, "HVNODE03") as client:
        refused = client.stop(default.NOT_CANCELLABLE)
        assert isinstance(refused.error, errors.JobNotCancellable) and refused.changed is False
        assert entries(cluster, default.NOT_CANCELLABLE) == []  # nothing was sent
        forced = client.stop(default.NOT_CANCELLABLE, force=True)
    tried, changed, error_type = expected_stop(profile, "auto", "kill", cancellable=False)
    assert [e["method"] for e in entries(cluster, default.NOT_CANCELLABLE)] == tried
    assert (forced.changed, forced.error.type if forced.error else None) == (changed, error_type)
    assert cluster.job(default.NOT_CANCELLABLE)["state"] == "Running"


def test_stop_with_a_timeout_period(cluster: SimulatedCluster) -> None:
    job_id = "STOP-WITH-TIMEOUT"
    cluster.add_job(id=job_id, node="HVNODE01", state="Running")
    with job_client(cluster, "HVNODE01") as client:
        result = client.stop(job_id, method="request-state-change", timeout_period=dt.timedelta(seconds=30))
    tried, changed, error_type = expected_stop(cluster.profile, "request-state-change", "kill", timeout_period=True)
    assert (result.changed, result.error.type if result.error else None) == (changed, error_type)
    log = entries(cluster, job_id)
    assert [e["method"] for e in log] == tried
    assert log[0]["parameters"] == {"RequestedState": 5, "TimeoutPeriod": 30.0}
    if error_type == "method" and _answer(cluster.profile, RSC, cancellable=True, timeout_period=True) == "failed":
        assert result.return_value == 4098 and result.return_name == "Timeout Parameter Not Supported"


# --- kill, wait, errors ------------------------------------------------------------------------------


def test_kill_reports_what_the_provider_answered(cluster: SimulatedCluster) -> None:
    profile = cluster.profile
    with job_client(cluster, "HVNODE01") as client:
        running = client.kill(default.RUNNING)
        finished = client.kill(default.COMPLETED)
        skipped = client.kill(default.COMPLETED, skip_terminal=True)
    check_changed(running, cluster, default.RUNNING)
    check_changed(finished, cluster, default.COMPLETED)
    truth = cluster.job(default.RUNNING)
    if profile.killjob == "supported":
        assert running.ok and running.changed and truth["state"] == profile.killed_state
        code = {"invalid-state": 32775, "success": 0, "failed": 4}[profile.killjob_finished]
        assert finished.return_value == code and finished.ok == (code == 0)
    else:
        assert running.changed is False and truth["state"] == "Running"
        if profile.killjob == "faults":
            assert isinstance(running.error, errors.NotSupported)
            assert running.error.wmi_code == 0x8004100C
        else:
            assert isinstance(running.error, errors.MethodFailed)
            assert running.return_value == {"returns-1": 1, "returns-32770": 32770}[profile.killjob]
    assert cluster.job(default.COMPLETED)["state"] == "Completed"  # KillJob never changes a finished job
    assert skipped.ok and skipped.changed is False and len(entries(cluster, default.COMPLETED)) == 1


@pytest.mark.parametrize("profile", KILLJOB_PROFILES, ids=[_id(p) for p in KILLJOB_PROFILES])
def test_kill_with_delete_on_kill_removes_the_job_at_once(profile: dict[str, str]) -> None:
    with SimulatedCluster(profile=profile, speed=0) as cluster:
        cluster.add_job(id="DELETE-ON-KILL", node="HVNODE01", delete_on_completion=False)
        cluster.add_job(id="KEEP-ON-KILL", node="HVNODE01", delete_on_completion=True)
        with job_client(cluster, "HVNODE01") as client:
            assert client.kill("DELETE-ON-KILL", delete_on_kill=True).changed
            assert client.kill("KEEP-ON-KILL", delete_on_kill=False).changed
            gone = client.show("DELETE-ON-KILL")
            kept = client.show("KEEP-ON-KILL")
        assert isinstance(gone.error, errors.ResourceNotFound) and gone.gone
        assert cluster.job("DELETE-ON-KILL")["removal"] == "delete_on_kill"
        # DeleteOnKill takes precedence over DeleteOnCompletion: false keeps the killed job.
        assert kept.ok and kept.job_state is not None and kept.job_state.label == cluster.profile.killed_state


def test_wait_follows_a_job_to_completion(cluster: SimulatedCluster) -> None:
    with job_client(cluster, "HVNODE03") as client:
        result = client.wait(default.COMPLETING, timeout=300, require_success=True)
    assert result.ok and result.succeeded is True, result.to_dict()
    assert result.job_state is JobState.COMPLETED and cluster.job(default.COMPLETING)["state"] == "Completed"
    assert result.properties is not None and result.properties["PercentComplete"] == 100
    assert entries(cluster, default.COMPLETING) == []  # waiting sends no method


def test_errors_of_a_failed_job_and_of_a_healthy_one(cluster: SimulatedCluster) -> None:
    with job_client(cluster, "HVNODE02") as client:
        failed = client.errors(default.FAILED)
        healthy = client.errors(default.LONG_RUNNING)
    assert failed.ok and failed.method == "GetErrorEx", failed.to_dict()
    assert failed.errors is not None and len(failed.errors) == 1
    error = failed.errors[0]
    assert error["__class"] == "Msvm_Error"
    assert error["Message"] == default.FAILED_DESCRIPTION and str(error["MessageID"]) == "32768"
    assert healthy.ok and healthy.errors == []
    assert [e["method"] for e in cluster.log()] == ["GetErrorEx", "GetErrorEx"]
    assert all(e["effect"] is None for e in cluster.log())


# --- many nodes -------------------------------------------------------------------------------------


def _targets(cluster: SimulatedCluster) -> list[HostTarget]:
    options = cluster_options(cluster)
    return [HostTarget(node, cluster.url(node), options) for node in cluster.nodes]


def test_a_cluster_wide_list_shows_what_each_node_has(cluster: SimulatedCluster) -> None:
    report = run("list", _targets(cluster), lambda c: c.list(), concurrency=3, processes=1)
    truth = [j for j in cluster.jobs() if not j["removed"] and j["class"] == "Msvm_CollectionReferencePointExportJob"]
    for result in report.results:
        listed = {j["InstanceID"] for j in result.jobs or []}
        if cluster.profile.jobs_visible_on == "every-node":
            expected = {j["id"] for j in truth}
        else:
            expected = {j["id"] for j in truth if j["node"] == result.host}
        assert result.ok and listed == expected, (result.host, listed, expected)
    assert cluster.log() == []


def test_stop_across_the_cluster_acts_once(cluster: SimulatedCluster) -> None:
    targets = _targets(cluster)
    report = on_job_node(
        "stop",
        targets,
        default.LONG_RUNNING,
        lambda c: c.stop(default.LONG_RUNNING),
        concurrency=3,
        missing_ok=True,
        processes=1,
    )
    tried, changed, _ = expected_stop(cluster.profile, "auto", "kill")
    log = entries(cluster, default.LONG_RUNNING)
    assert [e["method"] for e in log] == tried
    assert len({e["node"] for e in log}) == 1  # one node acted
    expected_finders = cluster.nodes if cluster.profile.jobs_visible_on == "every-node" else ["HVNODE02"]
    assert report.extra["job_found_on"] == expected_finders
    acted = [r for r in report.results if r.method != "Get"]
    assert len(acted) == 1 and acted[0].host == expected_finders[0] == log[0]["node"]
    assert acted[0].changed is changed
    others = [r for r in report.results if r is not acted[0]]
    assert all(r.changed is False for r in others)
    # The nodes that do not have the job say so (found: false), and are not failures.
    assert all(r.ok and r.found == (r.host in expected_finders) for r in others), [r.to_dict() for r in others]
