"""The simulator's model and providers, directly (no HTTP): time, removal, the methods' rules.

Also the cluster file's checks (file, line and field in every error), the WQL parser, and that
every job renders every property its class documents, with values consistent with each other.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from hvjob.errors import UsageError
from hvjob.jobs import JobState, decode_embedded_instance
from hvjob.testing.sim import Clock, ClusterModel, ClusterSpec, JobSpec, Profile, load_cluster_file, wql
from hvjob.testing.sim import default as defaults
from hvjob.testing.sim.model import (
    CLUSTER_NAMESPACE,
    CONCRETE_JOB,
    EXPORT_JOB,
    JOB_CLASSES,
    MIGRATION_JOB,
    SERVICE_CLASS,
    job_properties,
)
from hvjob.testing.sim.providers import CimFault, Embedded, MethodCall, MethodOutcome, Reference, method_provider
from hvjob.testing.sim.render import append_embedded, append_instance
from hvjob.wire.cim import EndpointReference, decode_value
from hvjob.wire.parse import decode_instance
from hvjob.wire.schema import CLASSES, typed_properties

START = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.timezone.utc)


def model(*jobs: JobSpec, profile: Profile | None = None) -> ClusterModel:
    spec = ClusterSpec("HVCLUSTER", ("HVNODE01", "HVNODE02"), tuple(jobs), 0.0, profile or Profile(), START)
    return ClusterModel(spec, Clock(0.0, START))


def call(m: ClusterModel, job_id: str, method: str, **params: Any) -> MethodOutcome:
    job = m.find(job_id)
    assert job is not None
    found = method_provider(job.class_name, method)
    assert found is not None
    spelled, provider = found
    now = m.clock.now()
    m.settle_job(job, now)
    return provider.invoke(MethodCall(m, job.node, job.class_name, job.namespace, spelled, job, {}, params, now))


def state(m: ClusterModel, job_id: str) -> JobState:
    job = m.find(job_id)
    assert job is not None
    m.settle_job(job, m.clock.now())
    return job.state


# --- the clock ---------------------------------------------------------------------------------------


def test_the_clock_runs_at_its_speed_and_advances_on_request() -> None:
    real = [100.0]
    clock = Clock(2.0, START, monotonic=lambda: real[0])
    real[0] += 5
    assert clock.now() == pytest.approx(10.0)
    clock.advance(30)
    assert clock.now() == pytest.approx(40.0)
    clock.speed = 0
    real[0] += 100
    assert clock.now() == pytest.approx(40.0)
    assert clock.datetime_at(40) == START + dt.timedelta(seconds=40)
    with pytest.raises(ValueError, match="back"):
        clock.advance(-1)


# --- running, finishing, removal -----------------------------------------------------------------


def test_a_running_job_progresses_then_completes_and_is_removed_after_time_before_removal() -> None:
    m = model(JobSpec("J", "HVNODE01", percent=40, runs_for=600, time_before_removal=300))
    job = m.find("J")
    assert job is not None
    m.clock.advance(300)
    props = job_properties(m, job, m.clock.now())
    assert props["JobState"] == 4 and props["PercentComplete"] == 70
    assert props["ElapsedTime"] == dt.timedelta(seconds=300)
    m.clock.advance(300)
    assert state(m, "J") is JobState.COMPLETED
    props = job_properties(m, job, m.clock.now())
    assert props["PercentComplete"] == 100 and props["ErrorCode"] == 0
    assert props["TimeOfLastStateChange"] == START + dt.timedelta(seconds=600)
    assert props["OperationalStatus"] == [2, 17] and props["Status"] == "OK"
    m.clock.advance(299)
    m.settle()
    assert not job.removed
    m.clock.advance(1)
    m.settle()
    assert job.removed and job.removal == "time_before_removal"
    assert job.removed_at == 900


def test_events_are_applied_at_the_time_they_were_due_even_when_settled_late() -> None:
    m = model(JobSpec("J", "HVNODE01", percent=0, runs_for=10, time_before_removal=5))
    m.clock.advance(1000)  # nobody looked for a long time
    m.settle()
    job = m.find("J")
    assert job is not None
    assert (job.finished_at, job.removed_at) == (10, 15)


def test_a_job_that_ends_in_exception_carries_its_error() -> None:
    m = model(JobSpec("J", "HVNODE01", runs_for=5, ends=JobState.EXCEPTION, error_code=32790, error_description="boom"))
    m.clock.advance(5)
    assert state(m, "J") is JobState.EXCEPTION
    job = m.find("J")
    assert job is not None
    props = job_properties(m, job, 5)
    assert (props["ErrorCode"], props["ErrorDescription"], props["ErrorSummaryDescription"]) == (32790, "boom", "boom")
    assert props["OperationalStatus"] == [6, 17] and props["Status"] == "Error"


def test_delete_on_completion_removes_the_job_at_once() -> None:
    m = model(JobSpec("J", "HVNODE01", runs_for=5, delete_on_completion=True))
    m.clock.advance(5)
    m.settle()
    job = m.find("J")
    assert job is not None and job.removed and job.removal == "delete_on_completion"


# --- KillJob -------------------------------------------------------------------------------------


def test_killjob_delete_on_kill_takes_precedence_over_delete_on_completion() -> None:
    m = model(
        JobSpec("KEEP", "HVNODE01", delete_on_completion=True),
        JobSpec("DROP", "HVNODE01", delete_on_completion=False),
    )
    assert call(m, "KEEP", "KillJob", DeleteOnKill=False).return_value == 0
    assert call(m, "DROP", "KillJob", DeleteOnKill=True).return_value == 0
    keep, drop = m.find("KEEP"), m.find("DROP")
    assert keep is not None and drop is not None
    assert keep.state is JobState.KILLED and not keep.removed
    assert drop.removed and drop.removal == "delete_on_kill"


def test_killjob_and_request_state_change_respect_cancellable_false() -> None:
    m = model(JobSpec("J", "HVNODE01", cancellable=False))
    assert call(m, "J", "KillJob", DeleteOnKill=False).return_value == 32775
    assert call(m, "J", "RequestStateChange", RequestedState=5).return_value == 32775
    assert state(m, "J") is JobState.RUNNING
    m.profile = m.profile.replace({"uncancellable": "not-supported"})
    assert call(m, "J", "RequestStateChange", RequestedState=4).return_value == 32770
    assert state(m, "J") is JobState.RUNNING


@pytest.mark.parametrize(("switch", "value"), [("returns-1", 1), ("returns-32770", 32770)])
def test_killjob_not_supported_return_values_change_nothing(switch: str, value: int) -> None:
    m = model(JobSpec("J", "HVNODE01"), profile=Profile(killjob=switch))
    outcome = call(m, "J", "KillJob", DeleteOnKill=False)
    assert (outcome.return_value, outcome.effect) == (value, None)
    assert state(m, "J") is JobState.RUNNING


def test_killjob_faults_when_the_profile_says_wmi_does_not_support_it() -> None:
    m = model(JobSpec("J", "HVNODE01"), profile=Profile(killjob="faults"))
    with pytest.raises(CimFault) as info:
        call(m, "J", "KillJob", DeleteOnKill=False)
    assert info.value.kind == "not_supported"


@pytest.mark.parametrize(("switch", "value"), [("invalid-state", 32775), ("success", 0), ("failed", 4)])
def test_killjob_on_a_finished_job_answers_what_the_profile_says(switch: str, value: int) -> None:
    m = model(JobSpec("J", "HVNODE01", state=JobState.COMPLETED), profile=Profile(killjob_finished=switch))
    outcome = call(m, "J", "KillJob", DeleteOnKill=True)
    assert (outcome.return_value, outcome.effect) == (value, None)
    job = m.find("J")
    assert job is not None and job.state is JobState.COMPLETED and not job.removed


# --- RequestStateChange ----------------------------------------------------------------------------


@pytest.mark.parametrize(("requested", "killed", "final"), [(5, "Killed", 9), (5, "Terminated", 8), (4, "Killed", 8)])
def test_request_state_change_sync_leaves_the_job_final(requested: int, killed: str, final: int) -> None:
    m = model(JobSpec("J", "HVNODE01"), profile=Profile(killed_state=killed))
    outcome = call(m, "J", "RequestStateChange", RequestedState=requested)
    assert outcome.return_value == 0 and outcome.out == {}
    assert int(state(m, "J")) == final


def test_request_state_change_async_passes_shutting_down_with_a_tracking_job() -> None:
    m = model(JobSpec("J", "HVNODE01", percent=30, runs_for=100), profile=Profile(request_state_change="async"))
    m.clock.advance(50)
    outcome = call(m, "J", "RequestStateChange", RequestedState=5)
    assert outcome.return_value == 4096
    reference = outcome.out["Job"]
    assert isinstance(reference, Reference) and reference.class_name == CONCRETE_JOB
    tracker = m.find(reference.instance_id)
    assert tracker is not None and tracker.tracks == "J" and tracker.state is JobState.RUNNING
    assert str(uuid.UUID(tracker.id)).upper() == tracker.id  # a GUID of its own, like Hyper-V's
    assert state(m, "J") is JobState.SHUTTING_DOWN
    job = m.find("J")
    assert job is not None and job.percent(m.clock.now()) == 65  # frozen where it stopped
    m.clock.advance(m.profile.transition_seconds)
    assert state(m, "J") is JobState.KILLED and state(m, tracker.id) is JobState.COMPLETED
    assert job.percent(m.clock.now()) == 65


def test_request_state_change_async_without_job_returns_no_reference() -> None:
    m = model(JobSpec("J", "HVNODE01"), profile=Profile(request_state_change="async-without-job"))
    outcome = call(m, "J", "RequestStateChange", RequestedState=4)
    assert outcome.return_value == 4096 and outcome.out == {}
    assert state(m, "J") is JobState.SHUTTING_DOWN
    m.clock.advance(m.profile.transition_seconds)
    assert state(m, "J") is JobState.TERMINATED
    assert [j.id for j in m.jobs.values()] == ["J"]


def test_request_state_change_other_values_and_finished_jobs_get_hyper_v_codes() -> None:
    m = model(JobSpec("J", "HVNODE01"), JobSpec("DONE", "HVNODE01", state=JobState.KILLED))
    assert call(m, "J", "RequestStateChange", RequestedState=7).return_value == 32773  # not a state
    assert call(m, "J", "RequestStateChange", RequestedState=None).return_value == 32773
    assert call(m, "J", "RequestStateChange", RequestedState=3).return_value == 32770  # Suspend
    assert call(m, "J", "RequestStateChange", RequestedState=2).return_value == 32775  # already running
    assert call(m, "DONE", "RequestStateChange", RequestedState=5).return_value == 32775
    assert state(m, "J") is JobState.RUNNING


def test_a_timeout_period_is_refused_only_when_the_profile_says_so() -> None:
    thirty = dt.timedelta(seconds=30)
    m = model(JobSpec("J", "HVNODE01"), profile=Profile(timeout_period="not-supported"))
    assert call(m, "J", "RequestStateChange", RequestedState=5, TimeoutPeriod=thirty).return_value == 4098
    assert call(m, "J", "RequestStateChange", RequestedState=5, TimeoutPeriod=dt.timedelta(0)).return_value == 0


# --- GetError, GetErrorEx ----------------------------------------------------------------------------


def _render_out(value: Any, profile: Profile) -> Any:
    element = etree.Element("{urn:x}Errors")
    append_embedded(element, value, profile)
    return decode_value(element)


@pytest.mark.parametrize("shape", ["text", "nested"])
def test_geterror_and_geterrorex_return_msvm_error_for_a_failed_job_and_null_otherwise(shape: str) -> None:
    m = model(
        JobSpec("BAD", "HVNODE01", state=JobState.EXCEPTION, error_code=32768, error_description="disk full"),
        JobSpec("OK", "HVNODE01"),
    )
    profile = Profile(geterrorex=shape)
    errors_out = call(m, "BAD", "GetErrorEx").out["Errors"]
    assert isinstance(errors_out, list) and len(errors_out) == 1 and isinstance(errors_out[0], Embedded)
    error = call(m, "BAD", "GetError").out["Error"]
    assert isinstance(error, Embedded) and error.class_name == "Msvm_Error"
    wire = _render_out(error, profile)
    assert isinstance(wire, str)
    assert wire.lstrip().startswith("<INSTANCE" if shape == "text" else "<p:Msvm_Error")
    decoded = decode_embedded_instance(wire)
    assert decoded["__class"] == "Msvm_Error"
    assert (decoded["Message"], str(decoded["MessageID"]), decoded["CIMStatusCode"]) == ("disk full", "32768", 1)
    assert call(m, "OK", "GetErrorEx").out == {"Errors": None}
    assert call(m, "OK", "GetError").out == {"Error": None}
    assert call(m, "BAD", "GetErrorEx").effect is None  # reading errors changes nothing


# --- ExportReferencePoint ----------------------------------------------------------------------------


def test_export_reference_point_creates_a_running_export_job() -> None:
    m = model(profile=Profile(export_seconds=120))
    found = method_provider(SERVICE_CLASS, "exportreferencepoint")
    assert found is not None
    spelled, provider = found
    collection = EndpointReference(
        "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/HyperVCluster/v2/Msvm_CollectionReferencePoint",
        {"InstanceID": "Microsoft:COLLECTION-1"},
    )
    params = {
        "ReferencePointCollection": collection,
        "ExportDirectory": "D:\\Exports\\Group1",
        "ExportSettingData": None,
    }
    outcome = provider.invoke(
        MethodCall(m, "HVNODE02", SERVICE_CLASS, CLUSTER_NAMESPACE, spelled, None, {}, params, 0.0, "CONTOSO\\backup")
    )
    assert spelled == "ExportReferencePoint" and outcome.return_value == 4096
    reference = outcome.out["Job"]
    assert isinstance(reference, Reference) and reference.class_name == EXPORT_JOB
    job = m.find(reference.instance_id)
    assert job is not None and job.node == "HVNODE02" and job.state is JobState.RUNNING
    props = job_properties(m, job, 0.0)
    assert (props["ExportDirectory"], props["CollectionId"], props["Owner"]) == (
        "D:\\Exports\\Group1",
        "Microsoft:COLLECTION-1",
        "CONTOSO\\backup",
    )
    m.clock.advance(120)
    assert state(m, job.id) is JobState.COMPLETED
    missing = provider.invoke(
        MethodCall(m, "HVNODE02", SERVICE_CLASS, CLUSTER_NAMESPACE, spelled, None, {}, {"ExportDirectory": "x"}, 0.0)
    )
    assert missing.return_value == 32773 and len(m.jobs) == 1


# --- every documented property, consistent -------------------------------------------------------------


@pytest.mark.parametrize("class_name", JOB_CLASSES)
@pytest.mark.parametrize("job_state", [JobState.RUNNING, JobState.COMPLETED, JobState.EXCEPTION, JobState.KILLED])
def test_every_documented_property_is_rendered_with_its_declared_type(class_name: str, job_state: JobState) -> None:
    m = model(JobSpec("J", "HVNODE01", class_name=class_name, state=job_state, percent=40, elapsed=100))
    job = m.find("J")
    assert job is not None
    parent = etree.Element("{urn:x}Items")
    element = append_instance(parent, class_name, CLUSTER_NAMESPACE, job_properties(m, job, 0.0), m.profile)
    instance = decode_instance(element)
    assert instance.class_name == class_name
    assert set(instance.properties) == set(CLASSES[class_name])  # every property, nothing else
    typed = typed_properties(class_name, instance.properties)
    for name, declared in CLASSES[class_name].items():
        value = typed[name]
        if value is None or declared.array:
            continue
        if declared.cim_type.startswith(("uint", "sint")):
            assert isinstance(value, int) and not isinstance(value, bool), (name, value)
        elif declared.cim_type == "boolean":
            assert isinstance(value, bool), (name, value)
        elif declared.cim_type == "string":
            assert isinstance(value, str), (name, value)
    assert typed["JobState"] == int(job_state)
    assert typed["PercentComplete"] == (100 if job_state is JobState.COMPLETED else 40)
    assert (typed["ErrorCode"] != 0) == (job_state is JobState.EXCEPTION)
    assert (typed["ErrorDescription"] is None) == (job_state is not JobState.EXCEPTION)
    start, elapsed = typed["StartTime"].value, typed["ElapsedTime"].value
    assert start == START - dt.timedelta(seconds=100) and elapsed == dt.timedelta(seconds=100)
    assert typed["TimeSubmitted"].value <= start <= typed["TimeOfLastStateChange"].value
    assert typed["TimeBeforeRemoval"].value == dt.timedelta(minutes=5)


def test_migration_and_concrete_jobs_have_their_own_properties() -> None:
    m = model(
        JobSpec("M", "HVNODE01", class_name=MIGRATION_JOB, destination_host="HVNODE02", virtual_system_name="VM-1"),
        JobSpec("C", "HVNODE01", class_name=CONCRETE_JOB, job_type=62),
    )
    migration, concrete = m.find("M"), m.find("C")
    assert migration is not None and concrete is not None
    props = job_properties(m, migration, 0.0)
    assert (props["DestinationHost"], props["VirtualSystemName"], props["JobType"]) == ("HVNODE02", "VM-1", 305)
    assert job_properties(m, concrete, 0.0)["JobType"] == 62


# --- WQL -------------------------------------------------------------------------------------------------


def test_wql_select_where_with_and_or_not_and_case_folding() -> None:
    query = wql.parse(
        "select InstanceID, jobstate from MSVM_CollectionReferencePointExportJob "
        "where (JobState = 4 or jobstate=6) AND NOT Name LIKE 'skip%' and ErrorDescription IS NULL",
        lambda n: CLASSES.get(next((c for c in CLASSES if c.lower() == n.lower()), "")),
    )
    assert query.class_name == "MSVM_CollectionReferencePointExportJob"
    assert query.properties == ("InstanceID", "JobState")
    assert query.matches({"JobState": 4, "Name": "export", "ErrorDescription": None})
    assert query.matches({"JobState": 6, "Name": "EXPORT", "ErrorDescription": None})
    assert not query.matches({"JobState": 7, "Name": "export", "ErrorDescription": None})
    assert not query.matches({"JobState": 4, "Name": "Skip this", "ErrorDescription": None})
    assert not query.matches({"JobState": 4, "Name": "export", "ErrorDescription": "x"})


def test_wql_compares_strings_case_insensitively_and_handles_quotes() -> None:
    query = wql.parse(
        "SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = 'ab''C' OR Name = \"x\"", lambda n: CLASSES[CONCRETE_JOB]
    )
    assert query.properties is None
    assert query.matches({"InstanceID": "AB'c", "Name": None})
    assert query.matches({"InstanceID": None, "Name": "X"})


@pytest.mark.parametrize(
    "text",
    [
        "SELECT FROM Msvm_ConcreteJob",
        "SELECT * Msvm_ConcreteJob",
        "SELECT * FROM Msvm_ConcreteJob WHERE",
        "SELECT * FROM Msvm_ConcreteJob WHERE JobState = ",
        "SELECT * FROM Msvm_ConcreteJob WHERE NoSuchProperty = 1",
        "SELECT * FROM Msvm_ConcreteJob WHERE JobState = 4 extra",
        "SELECT Nope FROM Msvm_ConcreteJob",
        "DELETE FROM Msvm_ConcreteJob",
    ],
)
def test_wql_refuses_what_wmi_refuses(text: str) -> None:
    with pytest.raises(wql.WqlError):
        wql.parse(text, lambda n: CLASSES[CONCRETE_JOB])


def test_wql_names_an_unknown_class() -> None:
    with pytest.raises(LookupError):
        wql.parse("SELECT * FROM Win32_Nothing", lambda n: None)


# --- the cluster file -------------------------------------------------------------------------------


def test_the_issue_example_cluster_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yml"
    path.write_text(
        "cluster: HVCLUSTER\n"
        "nodes: [HVNODE01, HVNODE02, HVNODE03]\n"
        "speed: 1.0\n"
        "profile: {killjob: supported, request_state_change: async, killed_state: Killed}\n"
        "jobs:\n"
        "  - id: 0D2F0000-0000-0000-0000-000000000001\n"
        "    node: HVNODE02\n"
        "    class: Msvm_CollectionReferencePointExportJob\n"
        "    namespace: root/HyperVCluster/v2\n"
        "    state: Running\n"
        "    percent: 40\n"
        "    runs_for: 600\n"
        "    ends: Exception\n"
        "    error_code: 32768\n"
        "    error_description: The export failed.\n"
        "    cancellable: true\n"
        "    delete_on_completion: false\n"
        "    time_before_removal: 300\n"
        "  - {node: hvnode03, state: completed, class: msvm_migrationjob, namespace: 'root\\virtualization\\v2'}\n"
    )
    spec = load_cluster_file(path)
    assert spec.name == "HVCLUSTER" and spec.nodes == ("HVNODE01", "HVNODE02", "HVNODE03")
    assert spec.profile.request_state_change == "async"
    first, second = spec.jobs
    assert (first.node, first.state, first.runs_for, first.ends, first.error_code) == (
        "HVNODE02",
        JobState.RUNNING,
        600.0,
        JobState.EXCEPTION,
        32768,
    )
    assert (second.node, second.class_name, second.namespace) == ("HVNODE03", MIGRATION_JOB, "root/virtualization/v2")
    assert second.id == load_cluster_file(path).jobs[1].id  # a generated id is stable


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "nodes: [A, B]\njobs:\n  - node: A\n    state: Runing\n",
            "cluster.yml:4: jobs[0].state: 'Runing' is not a job state",
        ),
        ("nodes: [A]\njobs:\n  - node: C\n", "cluster.yml:3: jobs[0].node: 'C' is not one of the nodes"),
        ("nodes: [A]\njobs:\n  - percent: 140\n", "cluster.yml:3: jobs[0].percent: 140 is out of range"),
        ("nodes: [A]\njobs:\n  - {}\n  - colour: red\n", "cluster.yml:4: jobs[1].colour: unknown field"),
        ("nodes: [A]\nprofile:\n  killjob: maybe\n", "cluster.yml:2: profile: killjob: 'maybe' is not one of"),
        ("nodes: [A]\nspeed: fast\n", "cluster.yml:2: speed: expected a number"),
        ("nodes: [A, a]\n", "cluster.yml:1: nodes: a is listed twice"),
        ("nodes: [A]\njobs:\n  - {id: X}\n  - {id: x}\n", "cluster.yml:4: jobs[1].id: x is listed twice"),
        ("nodes: [A]\njobs:\n  - cancellable: 'no'\n", "cluster.yml:3: jobs[0].cancellable: expected true or false"),
        ("nodes: [A]\njobs: [\n", "cluster.yml:3: not valid YAML"),
        ("colour: red\n", "cluster.yml:1: colour: unknown field"),
    ],
)
def test_cluster_file_errors_name_the_file_line_and_field(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "cluster.yml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_cluster_file(path)
    assert str(info.value).startswith(str(tmp_path / where.split(":", 1)[0]) + ":" + where.split(":", 1)[1]), str(
        info.value
    )


def test_a_missing_cluster_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read cluster file"):
        load_cluster_file(tmp_path / "absent.yml")


def test_the_default_cluster_has_the_documented_jobs() -> None:
    spec = defaults.default_cluster_spec()
    by_id = {job.id: job for job in spec.jobs}
    assert spec.nodes == ("HVNODE01", "HVNODE02", "HVNODE03")
    assert (by_id[defaults.RUNNING].node, by_id[defaults.RUNNING].state) == ("HVNODE01", JobState.RUNNING)
    assert by_id[defaults.COMPLETING].runs_for == 30
    assert by_id[defaults.COMPLETED].state is JobState.COMPLETED
    assert (by_id[defaults.FAILED].state, by_id[defaults.FAILED].error_code) == (JobState.EXCEPTION, 32768)
    assert by_id[defaults.NOT_CANCELLABLE].cancellable is False
    big = defaults.default_cluster_spec(1000)
    assert big.nodes[0] == "HVNODE0001" and len(big.jobs) == 6 + 1000
    assert {j.node for j in big.jobs if j.id.startswith("0D2F5C1A-7E3B-4A9D-9000")} == set(big.nodes)
