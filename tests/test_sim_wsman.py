"""The simulator over the wire: Windows-shaped faults, WQL and enumeration, case folding, the
control API, and injected faults with an exact method log. Real HTTP, NTLM, message encryption.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import real_responses_dir
from hvjob import errors
from hvjob.fanout import HostTarget, discover_cluster_nodes
from hvjob.jobs import JobState
from hvjob.testing.front import _is_loopback
from hvjob.testing.sim import SimulatedCluster, default
from hvjob.transport import WsmanSession
from hvjob.wire import build, ns
from hvjob.wire.cim import EndpointReference
from hvjob.wire.faults import decode_fault
from hvjob.wire.parse import CimInstance, EnumerationPage, MethodOutput, read_envelope
from hvjob.wire.xmlsafe import parse_xml
from sim_helpers import cluster_options, job_client

CLUSTER_NS = "root/HyperVCluster/v2"
EXPORT = "Msvm_CollectionReferencePointExportJob"
EXPORT_URI = ns.wmi_resource_uri(CLUSTER_NS, EXPORT)


@pytest.fixture
def cluster() -> Iterator[SimulatedCluster]:
    with SimulatedCluster(speed=0) as running:
        yield running


@pytest.fixture
def session(cluster: SimulatedCluster) -> Iterator[WsmanSession]:
    with WsmanSession(cluster.url("HVNODE01"), cluster_options(cluster)) as opened:
        yield opened


def get(session: WsmanSession, job_id: str, uri: str = EXPORT_URI, **selectors: str) -> Any:
    return session.send(build.build_get(session.header_options, uri, selectors or {"InstanceID": job_id}))


def invoke(session: WsmanSession, job_id: str, method: str, params: Any, uri: str = EXPORT_URI, **kw: Any) -> Any:
    return session.send(build.build_invoke(session.header_options, uri, method, params, {"InstanceID": job_id}, **kw))


def enumerate_all(session: WsmanSession, wql: str, namespace: str = CLUSTER_NS, **kw: Any) -> list[CimInstance]:
    uri = ns.wmi_namespace_uri(namespace)
    page = session.send(build.build_enumerate(session.header_options, uri, wql=wql, **kw))
    items: list[CimInstance] = []
    while True:
        assert isinstance(page, EnumerationPage)
        items.extend(page.items)
        if page.end_of_sequence or not page.context:
            return items
        page = session.send(build.build_pull(session.header_options, uri, page.context, max_elements=2))


# --- faults in the captures' shapes ----------------------------------------------------------------------


def _capture_fault(name: str) -> errors.WSManFault:
    envelope = read_envelope((real_responses_dir() / name).read_bytes())
    assert envelope.fault is not None
    return decode_fault(envelope.fault)


def test_a_gone_job_faults_as_the_real_get_of_a_missing_instance(session: WsmanSession) -> None:
    with pytest.raises(errors.ResourceNotFound) as info:
        get(session, "NO-SUCH-JOB")
    ours, real = info.value, _capture_fault("omi_TestInnerMessageFaultResponse.xml")
    assert type(ours) is type(real)
    for field in ("soap_code", "fault_subcode", "wsman_code", "fault_detail", "provider", "reason"):
        assert getattr(ours, field) == getattr(real, field), field
    assert ours.extended_status is not None and real.extended_status is not None
    assert set(ours.extended_status) == set(real.extended_status)
    assert ours.extended_status["Operation"] == "GetObject"
    assert ours.extended_status["ParameterInfo"] == f'{EXPORT}.InstanceID="NO-SUCH-JOB"'
    assert (ours.machine, ours.reporting_machine) == ("hvnode01.hvjob.test", "HVNODE01")
    assert ours.http_status == 500


def test_bad_selectors_fault_as_the_real_invalid_selectors(session: WsmanSession) -> None:
    with pytest.raises(errors.InvalidSelectors) as info:
        get(session, "", Name="export")
    assert (info.value.fault_subcode, info.value.wsman_code) == ("w:InvalidSelectors", 2150858843)
    assert info.value.fault_detail == "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors"


def test_a_wrong_parameter_name_or_type_faults_with_invalid_parameter(session: WsmanSession) -> None:
    for params in ({"DeleteOnKil": True}, {"DeleteOnKill": "perhaps"}):
        with pytest.raises(errors.WSManFault) as info:
            invoke(session, default.RUNNING, "KillJob", params)
        assert (info.value.fault_subcode, info.value.wsman_code) == ("w:InvalidParameter", 87), params
    with pytest.raises(errors.WSManFault) as info:
        invoke(session, default.RUNNING, "RequestStateChange", {"RequestedState": 70000})  # beyond uint16
    assert info.value.fault_subcode == "w:InvalidParameter"


def test_an_unknown_method_namespace_or_class_faults(session: WsmanSession) -> None:
    with pytest.raises(errors.WSManFault) as info:
        invoke(session, default.RUNNING, "Explode", {})
    assert info.value.wmi_code == 0x8004102E  # WBEM_E_INVALID_METHOD
    with pytest.raises(errors.ResourceNotFound) as gone:
        get(session, default.RUNNING, ns.wmi_resource_uri("root/NoSuchNamespace", EXPORT))
    assert gone.value.wmi_code == 0x8004100E  # WBEM_E_INVALID_NAMESPACE
    with pytest.raises(errors.ResourceNotFound) as gone:
        get(session, default.RUNNING, ns.wmi_resource_uri(CLUSTER_NS, "Msvm_NoSuchJob"))
    assert gone.value.wmi_code == 0x80041010  # WBEM_E_INVALID_CLASS


def test_a_wql_query_of_an_unknown_class_faults_as_the_real_one(session: WsmanSession) -> None:
    with pytest.raises(errors.CannotProcessFilter) as info:
        enumerate_all(session, "SELECT * FROM Win32_Processa")
    real = _capture_fault("winrb_wmi_fault_cannotprocessfilter_extendedstatus_2008r2.xml")
    assert (info.value.fault_subcode, info.value.wsman_code, info.value.message) == (
        real.fault_subcode,
        real.wsman_code,
        real.message,
    )
    assert info.value.extended_status is not None and info.value.extended_status["Operation"] == "ExecQuery"
    with pytest.raises(errors.CannotProcessFilter):
        enumerate_all(session, "SELECT * FROM Msvm_ConcreteJob WHERE")


def test_a_wql_filter_on_a_class_uri_is_refused(session: WsmanSession) -> None:
    request = build.build_enumerate(
        session.header_options, ns.wmi_namespace_uri(CLUSTER_NS), wql=f"SELECT * FROM {EXPORT}"
    )
    payload = request.payload.replace(b"/v2/*<", f"/v2/{EXPORT}<".encode())
    with pytest.raises(errors.WSManFault) as info:
        session.send(dataclasses.replace(request, payload=payload, resource_uri=EXPORT_URI))
    assert info.value.wsman_code == 0x803380FB


# --- case folding, WQL, enumeration -------------------------------------------------------------------


def test_namespace_class_method_and_property_names_are_case_insensitive(session: WsmanSession) -> None:
    folded = (
        "http://schemas.microsoft.com/wbem/wsman/1/wmi/ROOT/hypervcluster/V2/msvm_collectionreferencepointexportjob"
    )
    instance = get(session, default.RUNNING.lower(), folded)
    assert isinstance(instance, CimInstance) and instance["InstanceID"] == default.RUNNING
    listed = enumerate_all(
        session,
        "select instanceid from MSVM_COLLECTIONREFERENCEPOINTEXPORTJOB where JOBSTATE = 4",
        "ROOT\\HYPERVCLUSTER\\V2",
    )
    assert [item["InstanceID"] for item in listed] == [default.RUNNING]


def test_wql_property_lists_come_back_as_xml_fragments(session: WsmanSession) -> None:
    items = enumerate_all(session, f"SELECT InstanceID, JobState, StartTime FROM {EXPORT}")
    assert {item.class_name for item in items} == {None}  # w:XmlFragment
    assert all(set(item.properties) == {"InstanceID", "JobState", "StartTime"} for item in items)
    request = build.build_enumerate(
        session.header_options, ns.wmi_namespace_uri(CLUSTER_NS), wql=f"SELECT StartTime FROM {EXPORT}"
    )
    raw = session.send(request)
    assert isinstance(raw, EnumerationPage)
    # The captured shape: unqualified children, unqualified Datetime.
    assert raw.items[0]["StartTime"] is not None


def test_a_query_of_a_parent_class_finds_every_job_class(cluster: SimulatedCluster, session: WsmanSession) -> None:
    cluster.add_job(id="MIGRATION-1", node="HVNODE01", class_name="Msvm_MigrationJob")
    items = enumerate_all(session, "SELECT * FROM CIM_ConcreteJob WHERE JobState = 4")
    assert {(i.class_name, i["InstanceID"]) for i in items} == {
        (EXPORT, default.RUNNING),
        ("Msvm_MigrationJob", "MIGRATION-1"),
    }


@pytest.mark.parametrize("optimize", [True, False])
def test_enumeration_pages_through_pull_and_release_ends_it(
    cluster: SimulatedCluster, session: WsmanSession, optimize: bool
) -> None:
    for n in range(5):
        cluster.add_job(id=f"EXTRA-{n}", node="HVNODE01")
    items = enumerate_all(session, f"SELECT * FROM {EXPORT}", optimize=optimize, max_elements=2)
    assert len(items) == 7
    uri = ns.wmi_namespace_uri(CLUSTER_NS)
    first = session.send(
        build.build_enumerate(session.header_options, uri, wql=f"SELECT * FROM {EXPORT}", max_elements=2)
    )
    assert isinstance(first, EnumerationPage) and first.context and len(first.items) == 2
    session.send(build.build_release(session.header_options, uri, first.context))
    with pytest.raises(errors.WSManFault) as info:
        session.send(build.build_pull(session.header_options, uri, first.context))
    assert info.value.fault_subcode == "n:InvalidEnumerationContext"


def test_a_class_uri_without_a_filter_enumerates_the_class(session: WsmanSession) -> None:
    page = session.send(build.build_enumerate(session.header_options, EXPORT_URI, max_elements=50))
    assert isinstance(page, EnumerationPage) and page.end_of_sequence
    assert {item["InstanceID"] for item in page.items} == {default.RUNNING, default.COMPLETED}


def test_cluster_discovery_finds_every_node(cluster: SimulatedCluster) -> None:
    names = discover_cluster_nodes(HostTarget("HVNODE02", cluster.url("HVNODE02"), cluster_options(cluster)))
    assert names == ["HVNODE01", "HVNODE02", "HVNODE03"]


def test_identify_reports_the_os_version_once_authenticated(session: WsmanSession) -> None:
    assert session.identify().product_version == "OS: 10.0.20348 SP: 0.0 Stack: 3.0"
    assert session.identify(anonymous=True).product_version == "OS: 0.0.0 SP: 0.0 Stack: 3.0"


def test_a_finished_job_is_gone_after_its_time_before_removal(cluster: SimulatedCluster, session: WsmanSession) -> None:
    cluster.add_job(id="SHORT", node="HVNODE01", state="Completed", time_before_removal=300)
    assert isinstance(get(session, "SHORT"), CimInstance)
    cluster.advance(299)
    assert isinstance(get(session, "SHORT"), CimInstance)
    cluster.advance(1)
    with pytest.raises(errors.ResourceNotFound):
        get(session, "SHORT")
    assert cluster.job("SHORT")["removed"] is True


def test_the_cluster_namespace_shows_other_nodes_jobs_only_in_every_node_mode(cluster: SimulatedCluster) -> None:
    with WsmanSession(cluster.url("HVNODE03"), cluster_options(cluster)) as session:
        with pytest.raises(errors.ResourceNotFound):
            get(session, default.RUNNING)
        cluster.set_profile(jobs_visible_on="every-node")
        assert isinstance(get(session, default.RUNNING), CimInstance)
        cluster.add_job(id="LOCAL-1", node="HVNODE01", namespace="root/virtualization/v2")
        with pytest.raises(errors.ResourceNotFound):  # root/virtualization/v2 is the node's own
            get(session, "LOCAL-1", ns.wmi_resource_uri("root/virtualization/v2", EXPORT))


# --- ExportReferencePoint: jobs are created as backup software creates them -------------------------------


def test_export_reference_point_starts_a_job_that_hvjob_then_stops(cluster: SimulatedCluster) -> None:
    with WsmanSession(cluster.url("HVNODE02"), cluster_options(cluster)) as session:
        (service,) = enumerate_all(session, "SELECT * FROM Msvm_CollectionReferencePointService")
        service_uri = ns.wmi_resource_uri(CLUSTER_NS, "Msvm_CollectionReferencePointService")
        selectors = {
            key: str(service[key]) for key in ("CreationClassName", "Name", "SystemCreationClassName", "SystemName")
        }
        collection = EndpointReference(
            ns.wmi_resource_uri(CLUSTER_NS, "Msvm_VirtualSystemCollection"), {"InstanceID": "Microsoft:GROUP-7"}
        )
        request = build.build_invoke(
            session.header_options,
            service_uri,
            "ExportReferencePoint",
            [("ReferencePointCollection", collection), ("ExportDirectory", "E:\\Backups\\Group7")],
            selectors,
        )
        out = session.send(request)
        assert isinstance(out, MethodOutput) and out.return_value == 4096 and out.job is not None
        job_id = out.job.key_selectors()["InstanceID"]
        created = session.send(
            build.build_get(session.header_options, out.job.resolved_resource_uri(), out.job.key_selectors())
        )
        assert isinstance(created, CimInstance) and created["JobState"] == "4"
        assert (created["ExportDirectory"], created["CollectionId"]) == ("E:\\Backups\\Group7", "Microsoft:GROUP-7")
    with job_client(cluster, "HVNODE02") as client:
        stopped = client.stop(job_id)
    assert stopped.ok and stopped.changed and cluster.job(job_id)["state"] == "Killed"
    assert [e["method"] for e in cluster.log()] == ["ExportReferencePoint", "RequestStateChange"]
    assert cluster.log()[0]["effect"] == f"created {job_id}"


# --- injected faults and the method log ----------------------------------------------------------------


def test_drop_after_execute_runs_the_method_and_loses_the_answer(
    cluster: SimulatedCluster, session: WsmanSession
) -> None:
    cluster.inject(node="HVNODE01", method="RequestStateChange", kind="drop_after_execute")
    mid = build.new_message_id()
    with pytest.raises(errors.OutcomeUnknown):
        invoke(session, default.RUNNING, "RequestStateChange", {"RequestedState": 5}, message_id=mid)
    (entry,) = cluster.log()
    assert (entry["method"], entry["return_value"], entry["answer"], entry["message_id"]) == (
        "RequestStateChange",
        0,
        "dropped",
        mid,
    )
    assert cluster.job(default.RUNNING)["state"] == "Killed"


def test_hvjob_stop_after_a_dropped_answer_rereads_and_reports_unknown_change(cluster: SimulatedCluster) -> None:
    cluster.inject(method="RequestStateChange", kind="drop_after_execute")
    with job_client(cluster, "HVNODE01") as client:
        result = client.stop(default.RUNNING)
    assert result.ok and result.changed is None and result.job_state is JobState.KILLED, result.to_dict()
    assert [e["answer"] for e in cluster.log()] == ["dropped"]


def test_drop_before_execute_loses_the_request_and_runs_nothing(cluster: SimulatedCluster) -> None:
    cluster.inject(method="RequestStateChange", kind="drop_before_execute")
    with job_client(cluster, "HVNODE01") as client:
        result = client.stop(default.RUNNING)
    assert not result.ok and result.changed is None and result.error is not None
    assert result.error.type == "outcome_unknown"
    assert cluster.log() == [] and cluster.job(default.RUNNING)["state"] == "Running"


def test_a_provider_slower_than_the_operation_timeout_times_out_but_completes(cluster: SimulatedCluster) -> None:
    cluster.inject(method="KillJob", kind="timeout", seconds=30)  # more than the client's PT5S
    cluster.inject(method="KillJob", kind="timeout", seconds=1)  # within it: answered normally
    with job_client(cluster, "HVNODE01") as client:
        slow = client.kill(default.RUNNING)
        fast = client.kill(default.COMPLETED)
    assert isinstance(slow.error, errors.OperationTimedOut) and slow.error.type == "outcome_unknown"
    assert slow.error.wsman_code == 2150858793 and slow.changed is None
    assert fast.return_value == 32775
    assert [(e["job"], e["answer"]) for e in cluster.log()] == [
        (default.RUNNING, "timed_out"),
        (default.COMPLETED, "sent"),
    ]
    assert cluster.job(default.RUNNING)["state"] == "Killed"


@pytest.mark.parametrize(
    ("fields", "answer", "error"),
    [
        ({"kind": "close", "close": "mid_response"}, "dropped", "outcome_unknown"),
        ({"kind": "body", "body": "malformed"}, "altered", "protocol"),
        ({"kind": "corrupt", "corrupt": "payload"}, "altered", "protocol"),
        ({"kind": "latency_ms", "latency_ms": 20}, "sent", None),
        ({"kind": "fault", "fault": "access_denied"}, None, "wsman_fault"),
    ],
)
def test_the_injection_vocabulary_on_a_method(
    cluster: SimulatedCluster, fields: dict[str, Any], answer: str | None, error: str | None
) -> None:
    cluster.inject(method="KillJob", **fields)
    with job_client(cluster, "HVNODE01") as client:
        result = client.kill(default.RUNNING)
    assert (result.error.type if result.error else None) == error, result.to_dict()
    log = cluster.log()
    assert [e["answer"] for e in log] == ([answer] if answer else [])
    assert cluster.job(default.RUNNING)["state"] == ("Killed" if answer else "Running")


def test_a_fault_applies_to_its_node_method_job_and_count_only(cluster: SimulatedCluster) -> None:
    cluster.inject(node="HVNODE02", method="Get", kind="fault", fault="quota", count=2)
    with job_client(cluster, "HVNODE01") as one, job_client(cluster, "HVNODE02") as two:
        assert one.show(default.RUNNING).ok  # another node
        results = [two.show(default.LONG_RUNNING) for _ in range(3)]
    assert [type(r.error).__name__ for r in results] == ["QuotaExceeded", "QuotaExceeded", "NoneType"]
    control = cluster.control_api.handle("GET", "/_hvjob/faults", b"")
    assert control is not None and control.data == {"faults": []}


# --- the control API ---------------------------------------------------------------------------------------


def _control(cluster: SimulatedCluster, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    front = cluster.fronts[0]
    conn = http.client.HTTPConnection(front.host, front.port, timeout=10)
    conn.request(method, path, body=json.dumps(body) if body is not None else None)
    response = conn.getresponse()
    data = json.loads(response.read() or b"null")
    conn.close()
    assert response.getheader("Content-Type") == "application/json"
    return response.status, data


def test_the_control_api_over_http(cluster: SimulatedCluster) -> None:
    status, data = _control(cluster, "GET", "/_hvjob/cluster")
    assert status == 200 and data["cluster"] == "HVCLUSTER" and data["nodes"] == cluster.urls
    status, data = _control(cluster, "GET", "/_hvjob/jobs")
    first = data["jobs"][0]
    assert status == 200 and {"id", "node", "class", "namespace", "state", "job_state", "percent", "removed"} <= set(
        first
    )
    status, data = _control(cluster, "POST", "/_hvjob/jobs", {"id": "NEW-1", "node": "HVNODE02", "percent": 5})
    assert status == 201 and data["job"]["state"] == "Running" and data["job"]["node"] == "HVNODE02"
    status, data = _control(cluster, "POST", "/_hvjob/jobs", {"id": "NEW-2", "state": "Runing"})
    assert status == 400 and "state" in data["error"]
    status, data = _control(cluster, "POST", "/_hvjob/clock", {"advance": 30})
    assert status == 200 and data["seconds"] == pytest.approx(30)
    assert cluster.job(default.COMPLETING)["state"] == "Completed"
    status, data = _control(
        cluster, "POST", "/_hvjob/faults", {"node": "HVNODE01", "method": "KillJob", "kind": "drop_after_execute"}
    )
    assert status == 201 and data["fault"]["kind"] == "drop_after_execute"
    status, data = _control(cluster, "POST", "/_hvjob/faults", {"kind": "explode"})
    assert status == 400
    status, data = _control(cluster, "POST", "/_hvjob/profile", {"killjob": "returns-1"})
    assert status == 200 and cluster.profile.killjob == "returns-1"
    status, data = _control(cluster, "GET", "/_hvjob/log")
    assert status == 200 and data == {"log": []}
    status, data = _control(cluster, "POST", "/_hvjob/reset")
    assert status == 200 and cluster.profile.killjob == "supported" and cluster.model.faults == []
    assert all(job["id"] != "NEW-1" for job in cluster.jobs())
    assert _control(cluster, "GET", "/_hvjob/nothing")[0] == 404
    assert _control(cluster, "DELETE", "/_hvjob/jobs")[0] == 405


def test_the_control_api_answers_loopback_clients_only(cluster: SimulatedCluster) -> None:
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("127.3.4.5")
    assert not _is_loopback("192.0.2.10") and not _is_loopback("not an address")
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    with SimulatedCluster(nodes=1, host="0.0.0.0", speed=0) as exposed:
        conn = http.client.HTTPConnection(address, exposed.fronts[0].port, timeout=10)
        conn.request("GET", "/_hvjob/jobs")
        response = conn.getresponse()
        body = response.read()
        conn.close()
    assert response.status == 404 and b"jobs" not in body


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if _is_loopback(address) else address


def test_every_request_is_reported_to_on_request() -> None:
    lines: list[dict[str, Any]] = []
    with SimulatedCluster(speed=0, on_request=lines.append) as cluster:
        with job_client(cluster, "HVNODE01") as client:
            client.stop(default.RUNNING)
            client.show("GONE")
    assert [(line["node"], line["operation"]) for line in lines] == [
        ("HVNODE01", "Get"),
        ("HVNODE01", "Invoke"),
        ("HVNODE01", "Get"),
    ]
    assert lines[1]["target"].endswith("-> ReturnValue 0") and lines[1]["answer"] == "200"
    assert lines[2]["answer"] == "500 a:DestinationUnreachable"


def test_the_xml_of_a_reply_has_the_shape_of_the_captures(cluster: SimulatedCluster) -> None:
    """Header order Action, MessageID, To, RelatesTo; xml:lang; typed instance, properties sorted."""
    from hvjob.testing.front import FrontRequest, ServerStats
    from hvjob.testing.sim.wsman import NodeBackend
    from hvjob.wire.xmlsafe import children, local

    request = build.build_get(build.HeaderOptions(), EXPORT_URI, {"InstanceID": default.RUNNING})
    reply = NodeBackend(cluster.model, "HVNODE01").answer(
        FrontRequest(request.payload, "HVNODE01", "alice", True, ServerStats())
    )
    assert reply.status == 200 and isinstance(reply.body, str)
    root = parse_xml(reply.body.encode())
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "en-US"
    header, body = list(children(root))
    assert [local(h.tag) for h in children(header)] == ["Action", "MessageID", "To", "RelatesTo"]
    (instance,) = list(children(body))
    assert instance.get("{http://www.w3.org/2001/XMLSchema-instance}type") == f"p:{EXPORT}_Type"
    assert instance.nsmap["p"] == EXPORT_URI
    names = [local(p.tag) for p in children(instance)]
    assert names == sorted(names, key=str.lower)
    assert names.count("VirtualMachineId") == 2  # an array repeats its element
