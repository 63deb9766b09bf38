"""What the chaos run needs from the simulated cluster, each checked on its own: a node's listener
that goes away and comes back with the node's state, the fault log (which request each fault
spoiled, by MessageID), clearing pending faults, a TCP reset, the quota fault in the captures' shape."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

import pytest

from conftest import real_responses_dir
from hvjob import errors
from hvjob.jobs import JobClient, JobState
from hvjob.testing.sim import SimulatedCluster, default
from hvjob.transport import WsmanSession
from hvjob.wire.faults import decode_fault
from hvjob.wire.parse import read_envelope
from sim_helpers import cluster_options, job_client


def _control(cluster: SimulatedCluster, via: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A control request sent to node ``via``'s listener."""
    host, _, port = cluster.resolve[via].partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def _refused(cluster: SimulatedCluster, node: str) -> bool:
    host, _, port = cluster.resolve[node].partition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


# --- a node's listener going away and coming back ------------------------------------------------------


def test_a_stopped_listener_refuses_connections_and_comes_back_on_its_port_with_the_state(
    cluster: SimulatedCluster,
) -> None:
    url = cluster.url("HVNODE01")
    with WsmanSession(url, cluster_options(cluster)) as session:
        assert JobClient(session).stop(default.RUNNING).changed is True
        cluster.stop_listening("HVNODE01")
        assert cluster.listeners()["HVNODE01"]["listening"] is False
        assert _refused(cluster, "HVNODE01") and not _refused(cluster, "HVNODE02")
        gone = JobClient(session).show(default.RUNNING)  # its keep-alive connection was closed too
        assert gone.error is not None and gone.error.type == "connection" and gone.status == "unreachable"
        host, _, port = cluster.resolve["HVNODE01"].partition(":")
        with socket.socket() as other, pytest.raises(OSError):  # the port stays the listener's
            other.bind((host, int(port)))
        cluster.start_listening("HVNODE01")
        back = JobClient(session).show(default.RUNNING)
    assert back.ok and back.job_state is JobState.KILLED and cluster.url("HVNODE01") == url
    assert cluster.listeners()["HVNODE01"]["listening"] is True
    assert [e["method"] for e in cluster.log()] == ["RequestStateChange"]  # the state survived the restart


def test_the_control_api_takes_a_listener_away_and_brings_it_back(cluster: SimulatedCluster) -> None:
    status, data = _control(cluster, "HVNODE01", "GET", "/_hvjob/nodes")
    assert status == 200 and set(data["nodes"]) == set(cluster.nodes)
    assert data["nodes"]["HVNODE02"] == {"url": cluster.url("HVNODE02"), "listening": True, "connections": 0}
    status, data = _control(cluster, "HVNODE01", "POST", "/_hvjob/nodes/hvnode02", {"listening": False})
    assert status == 200 and data["node"] == "HVNODE02" and data["listening"] is False
    assert _refused(cluster, "HVNODE02")
    assert _control(cluster, "HVNODE01", "POST", "/_hvjob/nodes/HVNODE02", {"listening": True})[1]["listening"]
    assert not _refused(cluster, "HVNODE02")
    status, data = _control(cluster, "HVNODE01", "POST", "/_hvjob/nodes/HVNODE02", {"restart": 3600})
    assert status == 200 and data["listening"] is False  # back in an hour, or when told
    cluster.start_listening("HVNODE02")
    for body in ({"listening": "no"}, {"restart": -1}, {"close_connections": False}, {}, {"reboot": True}):
        status, data = _control(cluster, "HVNODE01", "POST", "/_hvjob/nodes/HVNODE02", body)
        assert status == 400 and data["error"].startswith("nodes:"), body
    assert _control(cluster, "HVNODE01", "POST", "/_hvjob/nodes/HVNODE09", {"listening": False})[0] == 400


def test_close_connections_is_an_idle_close_the_session_recovers_from(cluster: SimulatedCluster) -> None:
    with job_client(cluster, "HVNODE01") as client:
        assert client.show(default.RUNNING).ok
        assert cluster.listeners()["HVNODE01"]["connections"] == 1
        status, _ = _control(cluster, "HVNODE02", "POST", "/_hvjob/nodes/HVNODE01", {"close_connections": True})
        assert status == 200
        result = client.stop(default.RUNNING)
    assert result.ok and result.changed is True, result.to_dict()
    assert [(r.request, r.outcome) for r in result.requests] == [
        ("Get", "answered"),
        ("RequestStateChange", "answered"),
    ]
    assert [e["method"] for e in cluster.log()] == ["RequestStateChange"]


@pytest.mark.parametrize(("execute", "state"), [(True, "Killed"), (False, "Running")])
def test_a_restart_fault_takes_the_listener_away_with_the_answer(
    cluster: SimulatedCluster, execute: bool, state: str
) -> None:
    cluster.inject(node="HVNODE01", method="RequestStateChange", kind="restart", seconds=3600, execute=execute)
    with job_client(cluster, "HVNODE01") as client:
        result = client.stop(default.RUNNING)
        assert cluster.listeners()["HVNODE01"]["listening"] is False
        cluster.start_listening("HVNODE01")
        after = client.show(default.RUNNING)
    # The answer was lost and the re-read was refused: whether the stop ran cannot be known.
    assert result.changed is None and result.error is not None and result.error.type == "outcome_unknown"
    sent = [r for r in result.requests if r.request == "RequestStateChange"]
    assert [(r.outcome, r.return_value) for r in sent] == [("unknown", None)]
    (fired,) = cluster.fault_log()
    assert (fired["kind"], fired["request"], fired["message_id"]) == (
        "restart",
        "RequestStateChange",
        sent[0].message_id,
    )
    assert [(e["message_id"], e["answer"]) for e in cluster.log()] == (
        [(sent[0].message_id, "dropped")] if execute else []
    )
    assert after.ok and after.job_state is JobState[state.upper()] and cluster.job(default.RUNNING)["state"] == state


def test_a_restart_fault_brings_the_listener_back_by_itself(cluster: SimulatedCluster) -> None:
    cluster.inject(node="HVNODE02", method="Get", kind="restart", seconds=0.05)
    with job_client(cluster, "HVNODE02") as client:
        client.show(default.LONG_RUNNING)  # dropped, then refused (or back already: a race it may win)
        assert cluster.wait_listening("HVNODE02", timeout=30)  # the event, not a guess at a time
        assert cluster.listeners()["HVNODE02"]["listening"] is True
        assert client.show(default.LONG_RUNNING).ok
    (fired,) = cluster.fault_log()
    assert (fired["kind"], fired["request"], fired["seconds"]) == ("restart", "Get", 0.05)


# --- the fault log and clearing faults --------------------------------------------------------------------


def test_the_fault_log_names_the_request_each_fault_spoiled(cluster: SimulatedCluster) -> None:
    cluster.inject(node="HVNODE01", method="Get", kind="fault", fault="quota")
    cluster.inject(node="HVNODE01", method="KillJob", kind="drop_after_execute")
    cluster.inject(node="HVNODE03", method="KillJob", kind="timeout")  # another node: never used here
    with job_client(cluster, "HVNODE01") as client:
        shown = client.show(default.RUNNING)
        killed = client.kill(default.RUNNING)
    assert isinstance(shown.error, errors.QuotaExceeded) and killed.changed is None
    fired = cluster.fault_log()
    assert [(f["seq"], f["node"], f["request"], f["job"], f["kind"]) for f in fired] == [
        (1, "HVNODE01", "Get", default.RUNNING, "fault"),
        (2, "HVNODE01", "KillJob", default.RUNNING, "drop_after_execute"),
    ]
    assert fired[0]["fault"] == "quota"
    assert [f["message_id"] for f in fired] == [shown.requests[0].message_id, killed.requests[0].message_id]
    status, data = _control(cluster, "HVNODE02", "GET", "/_hvjob/faults/log")
    assert status == 200 and data == {"fired": fired}
    cluster.reset()
    assert cluster.fault_log() == []


def test_pending_faults_are_cleared_by_node_or_all(cluster: SimulatedCluster) -> None:
    for node in ("HVNODE01", "HVNODE02", "HVNODE02"):
        cluster.inject(node=node, method="Get", kind="drop_before_execute")
    cluster.inject(method="Get", kind="drop_before_execute")  # names no node: not one node's to clear
    status, data = _control(cluster, "HVNODE01", "DELETE", "/_hvjob/faults?node=hvnode02")
    assert status == 200 and data == {"cleared": 2}
    assert [(r.node, r.method) for r in cluster.model.faults] == [("HVNODE01", "Get"), (None, "Get")]
    assert _control(cluster, "HVNODE01", "DELETE", "/_hvjob/faults?node=HVNODE09")[0] == 400
    assert cluster.clear_faults() == 2 and cluster.model.faults == []
    with job_client(cluster, "HVNODE02") as client:
        assert client.show(default.LONG_RUNNING).ok
    assert cluster.fault_log() == []


def test_the_jobs_of_one_node(cluster: SimulatedCluster) -> None:
    status, data = _control(cluster, "HVNODE01", "GET", "/_hvjob/jobs?node=HVNODE02")
    assert status == 200
    assert {j["id"] for j in data["jobs"]} == {default.LONG_RUNNING, default.FAILED}
    assert _control(cluster, "HVNODE01", "GET", "/_hvjob/jobs?node=nowhere")[0] == 400


def test_fault_fields_are_checked(cluster: SimulatedCluster) -> None:
    for body in (
        {"kind": "restart", "seconds": "soon"},
        {"kind": "restart", "execute": "yes"},
        {"kind": "drop_before_execute", "execute": True},
    ):
        status, data = _control(cluster, "HVNODE01", "POST", "/_hvjob/faults", body)
        assert status == 400 and data["error"].startswith("faults:"), body


# --- a TCP reset, and the quota fault -----------------------------------------------------------------------


def test_close_reset_answers_with_a_tcp_reset_after_the_method_ran(cluster: SimulatedCluster) -> None:
    cluster.inject(node="HVNODE01", method="KillJob", kind="close", close="reset")
    with job_client(cluster, "HVNODE01") as client:
        result = client.kill(default.RUNNING)
    assert result.changed is None and isinstance(result.error, errors.OutcomeUnknown)
    assert "reset" in result.error.message.lower(), result.error.message  # ECONNRESET, not an orderly close
    assert [e["answer"] for e in cluster.log()] == ["dropped"]
    assert cluster.job(default.RUNNING)["state"] == "Killed"


def test_the_quota_fault_has_the_shape_of_the_max_concurrent_operations_capture(cluster: SimulatedCluster) -> None:
    cluster.inject(node="HVNODE01", method="RequestStateChange", kind="fault", fault="quota")
    with job_client(cluster, "HVNODE01") as client:
        result = client.stop(default.RUNNING)
    ours = result.error
    envelope = read_envelope((real_responses_dir() / "txwinrm_fault_max_concurrent_operations.xml").read_bytes())
    assert envelope.fault is not None
    real = decode_fault(envelope.fault)
    assert isinstance(ours, errors.QuotaExceeded) and type(ours) is type(real)
    for name in ("soap_code", "fault_subcode", "wsman_code", "reason", "message"):
        assert getattr(ours, name) == getattr(real, name), name
    assert result.changed is False and cluster.log() == []  # refused: nothing ran


def test_a_fault_can_let_the_first_matching_requests_pass(cluster: SimulatedCluster) -> None:
    cluster.inject(node="HVNODE02", method="Get", job=default.LONG_RUNNING, kind="fault", fault="quota", skip=2)
    with job_client(cluster, "HVNODE02") as client:
        results = [client.show(default.LONG_RUNNING) for _ in range(4)]
    assert [type(r.error).__name__ for r in results] == ["NoneType", "NoneType", "QuotaExceeded", "NoneType"]
    assert [f["message_id"] for f in cluster.fault_log()] == [results[2].requests[0].message_id]
    status, data = _control(cluster, "HVNODE01", "POST", "/_hvjob/faults", {"kind": "timeout", "skip": -1})
    assert status == 400 and "skip" in data["error"]
