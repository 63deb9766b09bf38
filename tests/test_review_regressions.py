"""Regressions from an independent review of the defects work: each test failed before its fix.

Most run against the simulated cluster and check its ground truth (the method log, the job states).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import CANARY_PASSWORD
from hvjob import errors
from hvjob.fanout import HostTarget, on_job_node
from hvjob.jobs import Job, JobClient, JobFilter, JobState
from hvjob.testing.sim import SimulatedCluster, default
from hvjob.wire.parse import CimInstance
from sim_helpers import cluster_options, job_client
from test_cli import hvjob

ARGS = ["--scheme", "http", "-u", "alice"]


def targets(cluster: SimulatedCluster) -> list[HostTarget]:
    return [HostTarget(node, url, cluster_options(cluster)) for node, url in cluster.urls.items()]


def resolve(cluster: SimulatedCluster) -> list[str]:
    return [arg for node, where in cluster.resolve.items() for arg in ("--resolve", f"{node}={where}")]


def doc(*args: str) -> tuple[int, dict[str, Any]]:
    proc = hvjob(*ARGS, "--output", "json", *args)
    return proc.returncode, json.loads(proc.stdout)


def test_an_interrupted_cluster_probe_reports_nothing_done(users_file: Path) -> None:
    cancel = threading.Event()

    def first_answer_then_ctrl_c(record: dict[str, Any]) -> None:
        cancel.set()  # as a Ctrl-C while the first node's answer is on its way

    with SimulatedCluster(
        users_file=users_file, username="alice", password=CANARY_PASSWORD, speed=0, on_request=first_answer_then_ctrl_c
    ) as sim:
        report = on_job_node(
            "stop", targets(sim), default.RUNNING, lambda c: c.stop(default.RUNNING), concurrency=1, cancel=cancel
        )
        assert sim.log() == [] and sim.job(default.RUNNING)["state"] == "Running"
    assert report.interrupted and report.exit_code == 130
    assert all(isinstance(r.error, errors.Interrupted) for r in report.results), [r.to_dict() for r in report.results]
    assert not any("handled once" in note for r in report.results for note in r.notes)


def test_an_unexpected_exception_after_an_accepted_stop_keeps_changed(cluster: SimulatedCluster) -> None:
    class Broken(JobClient):
        def _wait_after(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("a bug while waiting")

    with job_client(cluster, "HVNODE01") as client:
        broken = Broken(client.session)
        result = broken.stop(default.RUNNING, wait=True)
    assert result.changed is True and isinstance(result.error, errors.ProtocolError)
    assert [r.request for r in result.requests] == ["Get", "RequestStateChange"]
    assert cluster.job(default.RUNNING)["state"] == "Killed"


def test_an_impossible_datetime_stays_text_instead_of_failing_the_host() -> None:
    from hvjob.wire.schema import PropertyType, typed_value

    assert typed_value("20261301000000.000000+000", PropertyType("datetime")) == "20261301000000.000000+000"


def test_cancellable_false_is_honoured_for_a_class_the_schema_does_not_know() -> None:
    job = Job.from_instance(CimInstance("Msvm_StorageJob", None, {"InstanceID": "J", "Cancellable": "false"}))
    assert job.cancellable is False


def test_a_stop_all_filter_without_states_selects_running_jobs_only(cluster: SimulatedCluster) -> None:
    with job_client(cluster, "HVNODE01") as client:
        result = client.stop_all(where=JobFilter.of(owner=default.OWNER))
    assert [j["job"] for j in result.jobs or []] == [default.RUNNING]  # not the Completed one on HVNODE01
    with job_client(cluster, "HVNODE01") as client, pytest.raises(errors.UsageError):
        client.list([JobState.RUNNING], where=JobFilter.of(owner="x")).raise_for_error()


def test_a_shutting_down_job_is_not_sent_a_second_stop(cluster: SimulatedCluster) -> None:
    cluster.set_profile(request_state_change="async")
    with job_client(cluster, "HVNODE02") as client:
        first = client.stop(default.LONG_RUNNING)
        assert first.changed is True and cluster.job(default.LONG_RUNNING)["state"] == "Shutting Down"
        again = client.stop(default.LONG_RUNNING)
    assert again.ok and again.changed is False and "Shutting Down" in again.notes[0]
    assert [e["method"] for e in cluster.log()] == ["RequestStateChange"]


def test_a_lost_answer_then_shutting_down_is_ok_and_unknown(cluster: SimulatedCluster) -> None:
    cluster.set_profile(request_state_change="async")
    cluster.inject(kind="drop_after_execute", node="HVNODE02", method="RequestStateChange")
    with job_client(cluster, "HVNODE02") as client:
        result = client.stop(default.LONG_RUNNING, wait=True, timeout=600)
    assert result.ok and result.changed is None and result.job_state is JobState.KILLED
    assert [e["method"] for e in cluster.log()] == ["RequestStateChange"]  # not resent


def test_errors_of_a_job_that_is_gone_say_gone(cluster: SimulatedCluster) -> None:
    with job_client(cluster, "HVNODE01") as client:
        result = client.errors("0D2F5C1A-nowhere")
    assert result.gone and isinstance(result.error, errors.ResourceNotFound)


def test_stop_all_with_wait_reports_the_worse_failure(cluster: SimulatedCluster) -> None:
    cluster.set_profile(request_state_change="async")  # COMPLETING shuts down slowly; NOT_CANCELLABLE refuses
    code, report = doc("stop", cluster.resolve["HVNODE03"], "--all", "--yes", "--wait", "--timeout", "0.3")
    assert code == 1 and report["results"][0]["error"]["type"] == "method"  # not 4: something else failed too


def test_commands_own_options_do_not_come_from_the_environment(cluster: SimulatedCluster) -> None:
    env = {"HVJOB_STOP_YES": "1", "HVJOB_STOP_ALL_JOBS": "1"}
    os.environ.update(env)
    try:
        proc = hvjob(*ARGS, "stop", cluster.resolve["HVNODE01"])
    finally:
        for key in env:
            del os.environ[key]
    assert proc.returncode == 2 and cluster.log() == []  # "give either --job ID or --all": nothing stopped


def test_the_documented_environment_variable_of_class(cluster: SimulatedCluster) -> None:
    os.environ["HVJOB_CLASS"] = "Msvm_MigrationJob"
    try:
        code, report = doc("list", cluster.resolve["HVNODE01"])
    finally:
        del os.environ["HVJOB_CLASS"]
    assert code == 0 and report["results"][0]["jobs"] == []  # no migration jobs: the variable was read


def test_a_cluster_jsonl_list_streams_each_job_once(cluster: SimulatedCluster) -> None:
    cluster.set_profile(jobs_visible_on="every-node")
    proc = hvjob(*ARGS, *resolve(cluster), "--cluster", "--output", "jsonl", "list", "HVNODE01")
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    ids = [job["InstanceID"] for line in lines if "jobs" in line for job in line["jobs"]]
    assert len(ids) == len(set(ids)) == 6 and lines[-1]["summary"]["jobs"] == 6


def test_watch_until_done_fails_require_success_for_a_job_that_vanished_unfinished(cluster: SimulatedCluster) -> None:
    # Hyper-V removes a DeleteOnCompletion job at once: this one goes before a refresh sees its end.
    cluster.add_job(id="VANISHES", node="HVNODE01", runs_for=5, ends="Exception", delete_on_completion=True)
    import subprocess
    import sys

    from test_cli import HVJOB

    env = {**os.environ, "HVJOB_PASSWORD": CANARY_PASSWORD}
    argv = [*HVJOB, *ARGS, "watch", cluster.resolve["HVNODE01"], "--job", "VANISHES", "--until-done",
            "--require-success", "--interval", "0.2"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["event"] == "appeared"
    cluster.advance(10)
    proc.stdout.read()
    assert proc.wait(timeout=30) == 1, sys.stderr


def test_watch_follows_a_job_that_leaves_the_state_filter(cluster: SimulatedCluster) -> None:
    import subprocess

    from test_cli import HVJOB

    env = {**os.environ, "HVJOB_PASSWORD": CANARY_PASSWORD}
    argv = [*HVJOB, *ARGS, "watch", cluster.resolve["HVNODE03"], "--state", "Running", "--interval", "0.2"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        first = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert {e["job"] for e in first} == {default.COMPLETING, default.NOT_CANCELLABLE}
        cluster.advance(40)  # COMPLETING completes: no longer Running, still there
        event = json.loads(proc.stdout.readline())
        assert (event["event"], event["job"], event["state"]) == ("finished", default.COMPLETING, "Completed")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_profile_password_file_yields_to_hvjob_password(cluster: SimulatedCluster, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-password.txt"
    wrong.write_text("not-the-password\n")
    home = tmp_path / "home"
    (home / "hvjob").mkdir(parents=True)
    (home / "hvjob" / "config.toml").write_text(f'[default]\npassword_file = "{wrong}"\n')
    os.environ["XDG_CONFIG_HOME"] = str(home)
    try:
        proc = hvjob(*ARGS, "show", cluster.resolve["HVNODE01"], "--job", default.RUNNING)  # HVJOB_PASSWORD is set
    finally:
        del os.environ["XDG_CONFIG_HOME"]
    assert proc.returncode == 0, proc.stderr


def test_a_password_command_runs_once_for_many_inventory_hosts(cluster: SimulatedCluster, tmp_path: Path) -> None:
    pytest.importorskip("ansible", reason="ansible-core (hvjob[ansible]) not installed")
    counter = tmp_path / "runs"
    script = tmp_path / "password-command.sh"  # it prints the password: a credential store
    script.write_text(f"#!/bin/sh\necho run >> {counter}\necho '{CANARY_PASSWORD}'\n")
    script.chmod(0o700)
    home = tmp_path / "home"
    (home / "hvjob").mkdir(parents=True)
    config = home / "hvjob" / "config.toml"
    config.write_text(f'[default]\npassword_command = "{script}"\n')
    config.chmod(0o600)
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        "".join(
            f"{node} ansible_host={where.replace(':', ' ansible_port=')}\n" for node, where in cluster.resolve.items()
        )
        + "[all:vars]\nansible_user=alice\nansible_winrm_scheme=http\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HVJOB_PASSWORD"}
    import subprocess

    from test_cli import HVJOB

    proc = subprocess.run([*HVJOB, "--inventory", str(inventory), "--output", "json", "list"],
                          capture_output=True, text=True, env={**env, "XDG_CONFIG_HOME": str(home)}, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert counter.read_text().count("run") == 1


def test_inventory_variables_are_templated_and_parse_errors_show_no_secret(
    cluster: SimulatedCluster, tmp_path: Path
) -> None:
    pytest.importorskip("ansible", reason="ansible-core (hvjob[ansible]) not installed")
    host, port = cluster.resolve["HVNODE01"].split(":")
    secrets = tmp_path / "password-vars.yml"  # a credential store
    secrets.write_text(
        f"all:\n  vars:\n    winrm_pw: '{CANARY_PASSWORD}'\n  hosts:\n    HVNODE01:\n      ansible_host: {host}\n"
        f"      ansible_port: {port}\n      ansible_user: alice\n      ansible_winrm_scheme: http\n"
        "      ansible_password: '{{ winrm_pw }}'\n"
    )
    code, report = doc("--inventory", str(secrets), "show", "HVNODE01", "--job", default.RUNNING)
    assert code == 0, report
    broken = tmp_path / "broken-password.yml"
    broken.write_text(f"all:\n  hosts:\n    n1:\n      ansible_password: {CANARY_PASSWORD}\n    n2\n      x: y\n")
    proc = hvjob("--inventory", str(broken), "list")  # hvjob() asserts the canary is nowhere in the output
    assert proc.returncode == 2 and "cannot be parsed" in proc.stderr


def test_mixed_case_resolve_names_are_used(cluster: SimulatedCluster) -> None:
    mixed = [arg for node, where in cluster.resolve.items() for arg in ("--resolve", f"{node.title()}={where}")]
    code, report = doc(*mixed, "--cluster", "list", "HVNODE01")
    assert code == 0 and report["summary"]["jobs"] == 6


def test_bad_class_namespace_and_job_id_are_usage_errors_before_any_host() -> None:
    for args in (
        ["--class", "A B", "list", "h1"],
        ["--namespace", "root/../x", "list", "h1"],
        ["show", "h1", "--job", " "],
    ):
        assert hvjob(*ARGS, *args).returncode == 2, args


def test_after_ctrl_c_a_lost_request_is_not_resent(users_file: Path) -> None:
    import time

    from conftest import SCENARIOS, job_id, options
    from hvjob.testing import FakeWinRMServer
    from hvjob.transport import WsmanSession

    cancel = threading.Event()
    with FakeWinRMServer(SCENARIOS, users_file=users_file) as server:
        with WsmanSession(server.url, options(scheme="http")) as session:
            client = JobClient(session, cancel=cancel)
            assert client.show(job_id(0x360)).ok  # authenticated, connection open
            server.inject_next(close="before_response", latency_ms=300)
            before = server.stats.requests

            def ctrl_c_once_the_request_is_in() -> None:
                while server.stats.requests == before:
                    time.sleep(0.005)
                cancel.set()

            watcher = threading.Thread(target=ctrl_c_once_the_request_is_in)
            watcher.start()
            result = client.show(job_id(0x360))
            watcher.join()
        received = server.stats.requests - before
    assert received == 1, "the Get was resent after Ctrl-C"  # the transport would otherwise reconnect and resend
    assert result.error is not None and [r.outcome for r in result.requests] == ["failed"]


@pytest.mark.parametrize("bad", ["127.0.0.1:abc", "http://[::1", "host name", "h1:0"])
def test_malformed_hosts_are_usage_errors(bad: str) -> None:
    proc = hvjob(*ARGS, "show", bad, "--job", "x")  # hvjob() also asserts there is no traceback
    assert proc.returncode == 2 and "internal error" not in proc.stderr, proc.stderr


def test_a_refused_connection_is_one_plain_line() -> None:
    from hvjob.testing import free_port

    code, report = doc("show", f"127.0.0.1:{free_port()}", "--job", "x")
    message = report["results"][0]["error"]["message"]
    assert code == 3 and message == "connection refused: nothing accepts connections at that address and port"
