"""Job operations over real HTTP with NTLM and message encryption against the fake server."""

from __future__ import annotations

import json

import pytest
from lxml import etree

from conftest import CANARY_PASSWORD, job_id, options
from hvjob import errors
from hvjob.jobs import (
    JobClient,
    JobFilter,
    JobState,
    OperationResult,
    decode_embedded_instance,
    killjob_return_name,
    rsc_return_name,
)
from hvjob.testing import FakeWinRMServer
from hvjob.transport import WsmanSession
from hvjob.wire.cim import append_value

KILLJOB = {
    0: "Success",
    1: "Not Supported",
    2: "Unknown",
    3: "Timeout",
    4: "Failed",
    5: "DMTF Reserved",
    6: "Access Denied",
    7: "Not Found",
    100: "DMTF Reserved",
    32767: "DMTF Reserved",
    32768: "Vendor Specific",
    65535: "Vendor Specific",
}
KILLJOB_ORDER = [0, 1, 2, 3, 4, 5, 6, 7, 100, 32767, 32768, 65535]


@pytest.fixture
def client(http_server: FakeWinRMServer):  # type: ignore[no-untyped-def]
    session = WsmanSession(http_server.url, options(scheme="http"))
    yield JobClient(session, poll_initial=0.01, poll_max=0.05)
    session.close()


def invokes(server: FakeWinRMServer) -> list[str]:
    return [a.rsplit("/", 1)[-1] for a, _ in server.stats.served if a and "/wmi/" in a]


@pytest.mark.parametrize("value", KILLJOB_ORDER)
def test_kill_reports_every_return_value_with_the_seed_words(client: JobClient, value: int) -> None:
    result = client.kill(job_id(0x100 + KILLJOB_ORDER.index(value)))
    assert (result.method, result.return_value, result.return_name) == ("KillJob", value, KILLJOB[value])
    assert result.ok == (value == 0)
    assert result.changed == (value == 0)
    if value:
        assert isinstance(result.error, errors.MethodFailed) and result.error.type == "method"
        assert result.error.return_value == value


def test_kill_sends_delete_on_kill(client: JobClient, http_server: FakeWinRMServer) -> None:
    assert client.kill(job_id(0x200), delete_on_kill=True).ok
    # The fixture only answers a body with DeleteOnKill=true; false is unmatched (not found).
    result = client.kill(job_id(0x200), delete_on_kill=False)
    assert isinstance(result.error, errors.ResourceNotFound)


def test_kill_gone_job_and_missing_ok(client: JobClient) -> None:
    result = client.kill(job_id(0x201))
    assert isinstance(result.error, errors.ResourceNotFound) and result.gone and result.status == "failed"
    result = client.kill(job_id(0x201), missing_ok=True)
    assert result.ok and result.gone and result.changed is False


def test_kill_not_found_return_value_with_missing_ok(client: JobClient) -> None:
    result = client.kill(job_id(0x100 + KILLJOB_ORDER.index(7)), missing_ok=True)
    assert result.ok and result.gone and result.return_value == 7


def test_kill_invoke_timeout_is_outcome_unknown(client: JobClient) -> None:
    result = client.kill(job_id(0x337))
    assert isinstance(result.error, errors.OperationTimedOut)
    assert result.error.type == "outcome_unknown" and result.status == "failed"


def test_stop_running_job_then_rerun_is_unchanged(client: JobClient, http_server: FakeWinRMServer) -> None:
    first = client.stop(job_id(0x300), wait=True, timeout=5)
    assert first.ok and first.changed is True
    assert (first.method, first.return_value, first.return_name) == ("RequestStateChange", 0, "Completed")
    assert first.job_state is JobState.KILLED
    second = client.stop(job_id(0x300))
    assert second.ok and second.changed is False and second.job_state is JobState.KILLED
    assert invokes(http_server) == ["RequestStateChange"]


def test_stop_4096_polls_the_same_job(client: JobClient) -> None:
    result = client.stop(job_id(0x301), wait=True, timeout=5)
    assert result.ok and result.return_value == 4096 and result.return_name == "Transition Started"
    assert result.job_state is JobState.TERMINATED


def test_stop_4096_without_wait_reports_under_way(client: JobClient) -> None:
    result = client.stop(job_id(0x301))
    assert result.ok and result.changed is True and result.job_state is None


def test_stop_4096_follows_a_job_reference(client: JobClient, http_server: FakeWinRMServer) -> None:
    result = client.stop(job_id(0x302), wait=True, timeout=5)
    assert result.ok and result.job_state is JobState.KILLED
    assert any("followed Job" in n for n in result.notes)
    tracker_gets = [s for a, s in http_server.stats.served if s.get("InstanceID") == job_id(0x3020)]
    assert tracker_gets, "the Job reference was not followed"


@pytest.mark.parametrize(("n", "value"), [(0x311, 1), (0x312, 32770)])
def test_stop_falls_back_to_killjob_on_not_supported_return(
    client: JobClient, http_server: FakeWinRMServer, n: int, value: int
) -> None:
    result = client.stop(job_id(n), wait=True, timeout=5)
    assert result.ok and result.method == "KillJob" and result.return_value == 0
    assert result.return_name == "Success"
    assert invokes(http_server) == ["RequestStateChange", "KillJob"]


@pytest.mark.parametrize("n", [0x320, 0x321])
def test_stop_falls_back_on_not_supported_faults(client: JobClient, n: int) -> None:
    result = client.stop(job_id(n))
    assert result.ok and result.method == "KillJob" and any("falling back" in note for note in result.notes)


def test_terminate_never_escalates_to_killjob(client: JobClient, http_server: FakeWinRMServer) -> None:
    result = client.stop(job_id(0x351), mode="terminate")
    assert result.method == "RequestStateChange" and result.return_value == 1
    assert isinstance(result.error, errors.MethodFailed)
    assert invokes(http_server) == ["RequestStateChange"]


def test_terminate_mode_sends_requested_state_4(client: JobClient) -> None:
    result = client.stop(job_id(0x350), mode="terminate", wait=True, timeout=5)
    assert result.ok and result.job_state is JobState.TERMINATED


def test_kill_job_first_falls_back_to_request_state_change(client: JobClient, http_server: FakeWinRMServer) -> None:
    result = client.stop(job_id(0x352), method="kill-job-first")
    assert result.ok and result.method == "RequestStateChange"
    assert invokes(http_server) == ["KillJob", "RequestStateChange"]


def test_method_only_modes_do_not_fall_back(client: JobClient, http_server: FakeWinRMServer) -> None:
    result = client.stop(job_id(0x311), method="request-state-change")
    assert result.return_value == 1 and isinstance(result.error, errors.MethodFailed)
    assert invokes(http_server) == ["RequestStateChange"]


def test_stop_already_terminal_and_gone(client: JobClient, http_server: FakeWinRMServer) -> None:
    done = client.stop(job_id(0x330))
    assert done.ok and done.changed is False and done.job_state is JobState.COMPLETED
    gone = client.stop(job_id(0x331))
    assert gone.ok and gone.gone and gone.changed is False
    strict = client.stop(job_id(0x331), missing_ok=False)
    assert isinstance(strict.error, errors.ResourceNotFound)
    assert invokes(http_server) == []


def test_stop_gone_during_wait(client: JobClient) -> None:
    result = client.stop(job_id(0x332), wait=True, timeout=5)
    assert result.ok and result.changed is True and result.gone and result.job_state is None


def test_stop_not_cancellable_sends_nothing_unless_forced(client: JobClient, http_server: FakeWinRMServer) -> None:
    result = client.stop(job_id(0x333))
    assert isinstance(result.error, errors.JobNotCancellable) and result.error.type == "method"
    assert invokes(http_server) == []
    forced = client.stop(job_id(0x333), force=True)
    assert forced.return_value == 32775 and forced.return_name == "Invalid State"
    assert invokes(http_server) == ["RequestStateChange"]


def test_stop_provider_fault_keeps_every_field(client: JobClient) -> None:
    result = client.stop(job_id(0x334))
    error = result.error
    assert isinstance(error, errors.WSManFault) and error.type == "wsman_fault"
    assert error.wsman_code == 2150859081 and error.wmi_code == 2147749889
    assert error.machine == "HVNODE01.contoso.test" and error.message == "Generic failure"
    assert result.to_dict()["error"]["wmi_code"] == 2147749889


def test_stop_access_denied(client: JobClient) -> None:
    result = client.stop(job_id(0x335))
    assert isinstance(result.error, errors.AccessDenied) and result.status == "failed"


def test_stop_invoke_timeout_rereads_the_job(client: JobClient) -> None:
    result = client.stop(job_id(0x336))
    assert result.ok and result.changed is None and result.job_state is JobState.KILLED
    assert any("outcome unknown" in n for n in result.notes)


@pytest.mark.parametrize(
    ("n", "value", "name"), [(0x341, 4097, "Invalid State Transition"), (0x347, 32775, "Invalid State")]
)
def test_request_state_change_families(client: JobClient, n: int, value: int, name: str) -> None:
    result = client.stop(job_id(n))
    assert (result.return_value, result.return_name) == (value, name)
    assert isinstance(result.error, errors.MethodFailed)


def test_return_name_tables() -> None:
    assert [killjob_return_name(v) for v in KILLJOB] == list(KILLJOB.values())
    assert killjob_return_name(70000) == "Undefined"
    assert rsc_return_name(32770, "Msvm_ConcreteJob") == "Not Supported"
    assert rsc_return_name(32770, "CIM_ConcreteJob") == "Vendor Specific"
    assert rsc_return_name(4099, "CIM_ConcreteJob") == "Busy"
    assert rsc_return_name(5000, "CIM_ConcreteJob") == "Method Reserved"


def test_wait_outcomes(client: JobClient) -> None:
    done = client.wait(job_id(0x360), timeout=5)
    assert done.ok and done.succeeded and done.job_state is JobState.COMPLETED
    assert done.properties and done.properties["InstanceID"] == job_id(0x360)
    failed = client.wait(job_id(0x361), timeout=5)
    assert failed.ok and failed.succeeded is False and failed.job_state is JobState.EXCEPTION
    required = client.wait(job_id(0x361), timeout=5, require_success=True)
    assert isinstance(required.error, errors.JobFailed)
    late = client.wait(job_id(0x362), timeout=0.1)
    assert isinstance(late.error, errors.WaitTimedOut) and late.error.type == "wait_timeout"
    assert late.job_state is JobState.RUNNING and late.found is True  # what the last poll read
    assert late.status == "failed" and not isinstance(late.error, errors.TransportError)


def test_wait_on_a_job_never_seen_is_not_found_whatever_require_success_says(client: JobClient) -> None:
    for require_success in (False, True):
        typo = client.wait(job_id(0x331), timeout=5, require_success=require_success)  # never there
        assert isinstance(typo.error, errors.ResourceNotFound) and typo.gone and typo.found is False
        assert typo.status == "failed"


def test_wait_on_a_job_that_vanishes_after_being_seen(client: JobClient) -> None:
    vanished = client.wait(job_id(0x332), timeout=5)  # read Running, then gone
    assert vanished.ok and vanished.gone and vanished.found is True and vanished.succeeded is None
    assert "vanished" in vanished.notes[0]
    assert [r.found for r in vanished.requests] == [True, False]


def test_wait_requiring_success_of_a_job_that_vanished_fails(client: JobClient) -> None:
    vanished = client.wait(job_id(0x332), timeout=5, require_success=True)
    assert isinstance(vanished.error, errors.JobFailed) and vanished.gone


def test_stop_wait_that_times_out_keeps_the_accepted_stop(client: JobClient) -> None:
    result = client.stop(job_id(0x303), wait=True, timeout=0.05)
    assert (result.changed, result.method, result.return_value) == (True, "RequestStateChange", 4096)
    assert isinstance(result.error, errors.WaitTimedOut) and result.status == "failed"
    assert result.job_state is JobState.RUNNING and result.found is True


def test_stop_wait_that_loses_the_connection_keeps_the_accepted_stop(client: JobClient) -> None:
    result = client.stop(job_id(0x304), wait=True, timeout=5)
    assert (result.changed, result.method, result.return_value) == (True, "RequestStateChange", 4096)
    assert isinstance(result.error, errors.ConnectionFailed)
    assert result.status == "failed"  # the node answered the stop: it is not unreachable
    assert [r.request for r in result.requests][:2] == ["Get", "RequestStateChange"]
    assert result.requests[1].accepted


def test_list_pulls_every_page(client: JobClient, http_server: FakeWinRMServer) -> None:
    result = client.list()
    assert result.ok and [j["InstanceID"] for j in result.jobs or []] == [job_id(0x400 + i) for i in range(5)]
    assert [(a or "").rsplit("/", 1)[-1] for a, _ in http_server.stats.served] == ["Enumerate", "Pull", "Pull"]
    running = client.list([JobState.RUNNING])
    assert len(running.jobs or []) == 3


def test_abandoned_enumeration_is_released(client: JobClient, http_server: FakeWinRMServer) -> None:
    result = client.list([JobState.NEW])
    assert isinstance(result.error, errors.OperationTimedOut)
    assert [(a or "").rsplit("/", 1)[-1] for a, _ in http_server.stats.served] == ["Enumerate", "Pull", "Release"]


def test_show_types_the_job(client: JobClient) -> None:
    result = client.show(job_id(0x360))
    props = result.properties or {}
    assert props["Cancellable"] is True and props["StartTime"].startswith("2026-11-25T03:02:11")
    assert props["JobState"] == 4 and props["PercentComplete"] == 50 and props["ErrorCode"] == 0
    assert props["ElapsedTime"] == 252.5 and props["OperationalStatus"] == [2]
    assert props["Owner"] == "CONTOSO\\backup-svc" and props["Name"] == "Export reference point"
    job = client.get_job(job_id(0x361))
    assert job.cancellable is True and job.percent_complete == 40 and job.job_type == 97
    assert job.elapsed_time is not None and job.elapsed_time.total_seconds() == 252.5


@pytest.mark.parametrize(("n", "method", "count"), [(0x370, "GetError", 1), (0x371, "GetErrorEx", 2)])
def test_errors_in_both_shapes(client: JobClient, n: int, method: str, count: int) -> None:
    result = client.errors(job_id(n))
    assert result.ok and result.method == method and len(result.errors or []) == count
    first = (result.errors or [])[0]
    assert first["CIMStatusCode"] == 1 and first["PerceivedSeverity"] == 6
    assert first["Message"].startswith("The export of the collection reference point failed")


def test_decode_embedded_instance_rejects_hostile_text() -> None:
    bomb = '<!DOCTYPE x [<!ENTITY a "aaaa">]><INSTANCE>&a;</INSTANCE>'
    assert decode_embedded_instance(bomb) == {"Message": bomb}


def test_check_mode_reads_only(client: JobClient, http_server: FakeWinRMServer) -> None:
    client.check = True
    result = client.stop(job_id(0x300))
    assert result.ok and result.notes == ["would call RequestStateChange"]
    assert (result.changed, result.would_change) == (False, True)  # nothing was sent; a real run would
    killed = client.kill(job_id(0x360))  # first read: Running
    assert (killed.changed, killed.would_change) == (False, True)
    assert invokes(http_server) == []


def test_job_state_parse() -> None:
    assert JobState.parse("running") is JobState.RUNNING and JobState.parse("32768").label == "Completed with Warnings"
    with pytest.raises(errors.UsageError):
        JobState.parse("sleeping")


def test_job_state_prints_as_its_label_and_stays_a_number() -> None:
    state = JobState.COMPLETED_WITH_WARNINGS
    assert (str(state), f"{state}", f"{state:d}", f"{state:>6}") == ("Completed with Warnings",) * 2 + (
        "32768",
        " 32768",
    )
    assert json.dumps({"state": JobState.KILLED}) == '{"state": 9}' and int(JobState.KILLED) == 9
    root = etree.Element("r")
    append_value(root, "JobState", JobState.KILLED)  # the wire gets the number
    assert root[0].text == "9"


def test_kill_skip_terminal_is_idempotent(http_server: FakeWinRMServer) -> None:
    with WsmanSession(f"127.0.0.1:{http_server.port}", options(scheme="http")) as session:
        client = JobClient(session)
        first = client.kill(job_id(0x1), skip_terminal=True)  # Running: KillJob is sent
        assert (first.changed, first.method, first.error) == (True, "KillJob", None)
        second = client.kill(job_id(0x1), skip_terminal=True)  # now Killed: left alone
        assert (second.changed, second.method, second.error) == (False, "Get", None)
        assert second.job_state == JobState.KILLED
    assert [(a or "").rsplit("/", 1)[-1] for a, _ in http_server.stats.served].count("KillJob") == 1


# --- the library's surface --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["identify", "show", "list", "kill", "stop", "stop_all", "stop_many", "wait", "errors"]
)
def test_operations_keep_their_signatures_through_the_decorator(name: str) -> None:
    import inspect

    method = getattr(JobClient, name)
    signature = inspect.signature(method)
    assert "args" not in signature.parameters and "kwargs" not in signature.parameters
    assert next(iter(signature.parameters)) == "self" and method.__doc__
    assert signature.return_annotation in ("OperationResult", OperationResult)


def test_stop_signature_names_its_options() -> None:
    import inspect

    assert list(inspect.signature(JobClient.stop).parameters) == [
        "self", "job_id", "mode", "method", "wait", "timeout", "force", "missing_ok", "timeout_period",
    ]  # fmt: skip


def test_connect_is_the_one_obvious_entry_point(http_server: FakeWinRMServer) -> None:
    import hvjob

    assert {"connect", "JobClient", "JobState", "ConnectionOptions", "HvjobError"} <= set(hvjob.__all__)
    with hvjob.connect(http_server.url, username="alice", password=CANARY_PASSWORD, scheme="http") as client:
        result = client.stop(job_id(0x300))
        assert result.ok and result.changed is True and isinstance(client, hvjob.JobClient)
        assert client.session.connected
    assert not client.session.connected  # closed by the context manager


def test_list_jobs_are_typed_like_show(client: JobClient) -> None:
    jobs = client.list().jobs or []
    assert {type(j["JobState"]) for j in jobs} == {int} and {type(j["PercentComplete"]) for j in jobs} == {int}
    assert all(isinstance(j["Cancellable"], bool) for j in jobs)


def test_job_filter_by_state_age_owner_and_name(client: JobClient) -> None:
    running = client.list([JobState.RUNNING]).jobs or []
    assert len(running) == 3
    assert client.list(where=JobFilter.of(["Running"], owner="contoso\\BACKUP-SVC")).jobs == running
    assert client.list(where=JobFilter.of(["running"], owner="CONTOSO\\someone-else")).jobs == []
    assert client.list(where=JobFilter.of([4], name="*volume1\\backup*")).jobs == running  # ExportDirectory
    assert client.list(where=JobFilter.of([4], name="VMGroup9")).jobs == []
    assert client.list(where=JobFilter.of([4], older_than=60)).jobs == running  # ElapsedTime 252.5 s
    assert client.list(where=JobFilter.of([4], older_than=300)).jobs == []
    with pytest.raises(errors.UsageError):
        JobFilter.of(["Sleeping"])


def test_stop_all_is_a_library_call(client: JobClient, http_server: FakeWinRMServer) -> None:
    result = client.stop_all([JobState.RUNNING])
    assert [j["job"] for j in result.jobs or []] == [job_id(0x400), job_id(0x401), job_id(0x404)]
    assert result.notes[-1] == "3 job(s) selected, 0 failed"
    assert [j["gone"] for j in result.jobs or []] == [True, True, True]  # these list fixtures have no Get


def test_kill_job_first_falls_back_on_hyper_v_not_supported(client: JobClient, http_server: FakeWinRMServer) -> None:
    result = client.stop(job_id(0x353), method="kill-job-first")
    assert result.ok and result.changed is True and result.method == "RequestStateChange"
    assert result.notes[0] == "KillJob returned 32770 (Vendor Specific: Hyper-V's Not Supported); falling back"


def test_a_set_cancel_sends_nothing_more(http_server: FakeWinRMServer) -> None:
    import threading

    cancel = threading.Event()
    cancel.set()
    with WsmanSession(http_server.url, options(scheme="http")) as session:
        result = JobClient(session, cancel=cancel).stop(job_id(0x300))
    assert isinstance(result.error, errors.Interrupted) and result.requests == []
    assert http_server.stats.requests == 0


@pytest.mark.parametrize(
    ("job", "method", "expected"),
    [
        (0x311, "auto", ["Get", "RequestStateChange", "KillJob"]),  # RequestStateChange returns 1: fallback
        (0x352, "kill-job-first", ["Get", "KillJob", "RequestStateChange"]),
        (0x336, "auto", ["Get", "RequestStateChange", "Get"]),  # w:TimedOut: the job is read once more
    ],
)
def test_the_dry_run_plan_covers_what_stop_sends(client: JobClient, job: int, method: str, expected: list[str]) -> None:
    sent = [r.request for r in client.stop(job_id(job), method=method).requests]  # type: ignore[arg-type]
    assert sent == expected
    planned = [
        p.request.method if p.request.operation == "Invoke" else p.request.operation
        for p in client.plan("stop", job_id(job), method=method)  # type: ignore[arg-type]
    ]
    position = 0
    for name in sent:  # what was sent is the plan's requests, in the plan's order, some skipped
        position = planned.index(name, position) + 1
