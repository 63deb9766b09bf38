"""Fan-out over worker processes: hosts shared out, results and errors back intact, Ctrl-C, a dying worker.

The fake nodes run in a fleet process (``hvjob.testing.fleet``) so that nothing but the test runs
in this process's threads when it forks.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import CANARY_PASSWORD, SCENARIOS, job_id, options
from hvjob import errors, fanout
from hvjob.jobs import JobClient, OperationResult
from hvjob.testing import free_port
from hvjob.testing.fleet import FleetProcess
from test_cli import HVJOB

KILLABLE = job_id(0x100)  # KillJob returns 0
FAILS_4 = job_id(0x104)  # KillJob returns 4 (Failed)
GONE = job_id(0x201)  # KillJob faults: 0x80338000

pytestmark = pytest.mark.skipif(not fanout._can_fork(), reason="worker processes are forked (Linux)")


@pytest.fixture
def fleet(users_file: Path):  # type: ignore[no-untyped-def]
    with FleetProcess(users_file, 6, scenarios=SCENARIOS) as running:
        yield running


def _targets(ports: list[int]) -> list[fanout.HostTarget]:
    return [fanout.HostTarget(f"node{i}", f"127.0.0.1:{port}", options(scheme="http")) for i, port in enumerate(ports)]


def test_workers_share_the_hosts_and_results_come_back_typed(fleet: FleetProcess, tmp_path: Path) -> None:
    targets = _targets([*fleet.ports, free_port()])  # the last one refuses connections
    jobs = dict.fromkeys((t.address for t in targets), KILLABLE)
    jobs[targets[4].address], jobs[targets[5].address] = FAILS_4, GONE
    seen_in: list[int] = []

    def on_result(result: OperationResult) -> None:
        seen_in.append(os.getpid())

    report = fanout.run(
        "kill",
        targets,
        lambda client: client.kill(jobs[client.host]),
        concurrency=4,
        processes=2,
        record_dir=str(tmp_path),
        on_result=on_result,
    )

    assert [r.host for r in report.results] == [t.name for t in targets]  # host order, names restored
    assert [r.status for r in report.results] == ["ok"] * 4 + ["failed", "failed", "unreachable"]
    failed = report.results[4].error
    assert isinstance(failed, errors.MethodFailed)
    assert (failed.method, failed.return_value, failed.return_name) == ("KillJob", 4, "Failed")
    gone = report.results[5].error
    assert isinstance(gone, errors.ResourceNotFound) and gone.wsman_code == 0x80338000
    assert isinstance(report.results[6].error, errors.ConnectionFailed)
    assert report.exit_code == 3

    assert seen_in == [os.getpid()] * 7  # callbacks (progress, jsonl) run here, once per host
    pids = {w.pid for w in report.workers}
    assert len(report.workers) == 2 and len(pids) == 2 and os.getpid() not in pids
    assert sorted(w.hosts for w in report.workers) == [3, 4]
    assert all(w.exitcode == 0 and w.peak_rss_mb for w in report.workers)
    assert fleet.stats()["unmatched"] == 0
    recorded = sorted(p.name for p in tmp_path.glob("*.yml"))  # written by the workers
    assert recorded == sorted(f"kill-node{i}.yml" for i in range(6))  # not the unreachable node6: nothing to record
    assert report.recordings == sorted(str(p) for p in tmp_path.glob("*.yml"))  # passed back from the workers


def test_a_worker_that_dies_leaves_its_hosts_outcome_unknown(fleet: FleetProcess) -> None:
    targets = _targets(fleet.ports[:4])  # worker 0 gets node0 and node2, one at a time
    victim = targets[0].address

    def kill_or_die(client: JobClient) -> OperationResult:
        if client.host == victim:
            os._exit(3)
        return client.kill(KILLABLE)

    report = fanout.run("kill", targets, kill_or_die, concurrency=2, processes=2)

    assert [r.status for r in report.results] == ["failed", "ok", "failed", "ok"]
    for lost in (report.results[0], report.results[2]):
        assert isinstance(lost.error, errors.OutcomeUnknown)
        assert "exit code 3" in lost.error.message and lost.host in ("node0", "node2")
        assert lost.changed is None  # a kill may have been sent before the worker died: unknown, not "no"
    assert sorted(w.exitcode or 0 for w in report.workers) == [0, 3]
    assert fleet.stats()["invokes"] == 2  # node2 was never started


def _refuse() -> None:
    raise ValueError("cannot be rebuilt")


class _Unreadable:
    """Pickles, but does not unpickle."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_refuse, ())


def test_results_that_cannot_cross_are_reported_not_lost(fleet: FleetProcess) -> None:
    targets = _targets(fleet.ports[:3])
    odd: dict[str, dict[str, Any] | None] = {
        targets[0].address: {"odd": _Unreadable()},
        targets[1].address: {"odd": lambda: None},
    }

    def kill_oddly(client: JobClient) -> OperationResult:
        result = client.kill(KILLABLE)
        result.properties = odd.get(client.host, result.properties)
        return result

    report = fanout.run("kill", targets, kill_oddly, concurrency=3, processes=3)

    unreadable, unpicklable, fine = report.results
    assert isinstance(unreadable.error, errors.OutcomeUnknown) and "could not be read" in unreadable.error.message
    assert isinstance(unpicklable.error, errors.ProtocolError)
    assert "(succeeded) could not be passed back" in unpicklable.error.message
    assert fine.ok and fine.return_value == 0


def test_a_cancel_set_before_the_start_contacts_no_host(fleet: FleetProcess) -> None:
    cancel = threading.Event()
    cancel.set()
    report = fanout.run("kill", _targets(fleet.ports), lambda c: c.kill(KILLABLE), processes=2, cancel=cancel)
    assert len(report.workers) == 2 and report.interrupted and report.exit_code == 130
    assert [r.host for r in report.results] == [f"node{i}" for i in range(len(fleet.ports))]  # every host reported
    assert all(isinstance(r.error, errors.Interrupted) and r.requests == [] for r in report.results)
    assert all("nothing was sent" in r.error.message for r in report.results if r.error)
    assert fleet.stats()["requests"] == 0


def _kill_everywhere(fleet: FleetProcess, processes: int = 2) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """``hvjob kill`` on every node of ``fleet`` in a process group of its own, one host at a time per
    worker; returns once the first result is printed (the other workers' hosts are then running)."""
    hosts = [f"127.0.0.1:{port}" for port in fleet.ports]
    proc = subprocess.Popen(
        [*HVJOB, "--scheme", "http", "-u", "alice", "--processes", str(processes),
         "--concurrency", str(processes), "--output", "jsonl", "kill", *hosts, "--job", KILLABLE],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "HVJOB_PASSWORD": CANARY_PASSWORD},
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    first: dict[str, Any] = json.loads(proc.stdout.readline())
    assert first["status"] == "ok"
    return proc, first


def test_ctrl_c_on_the_process_group_stops_new_work_in_every_worker(users_file: Path) -> None:
    with FleetProcess(users_file, 8, scenarios=SCENARIOS, latency_ms=250) as slow:
        proc, first = _kill_everywhere(slow)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the parent and both workers
        assert proc.stdout is not None and proc.stderr is not None
        out = proc.stdout.read()  # not communicate(): it would skip what readline() buffered
        err = proc.stderr.read()
        proc.wait(timeout=60)
        invokes = slow.stats()["invokes"]
    assert proc.returncode == 130, err
    lines = [first] + [json.loads(line) for line in out.splitlines()]
    reported = [line for line in lines if "host" in line]
    finished = [r for r in reported if r["status"] == "ok"]
    assert len(reported) == 8 and lines[-1]["summary"]["interrupted"] is True  # every host accounted for
    assert 1 <= len(finished) < 8
    assert invokes == len(finished)  # every KillJob that was sent finished and was printed as ok
    for other in (r for r in reported if r["status"] != "ok"):
        assert other["error"]["type"] == "interrupted" and other["requests"] == []
    assert "interrupted" in err and "Traceback" not in err and "KeyboardInterrupt" not in err


def _children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; whether init reaps it is not ours


def test_workers_stop_starting_hosts_when_their_parent_is_killed(users_file: Path) -> None:
    with FleetProcess(users_file, 8, scenarios=SCENARIOS, latency_ms=250) as slow:
        proc, _ = _kill_everywhere(slow)
        workers = _children_of(proc.pid)
        assert len(workers) == 2
        proc.kill()  # SIGKILL: no Ctrl-C handling, nobody left to read results
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_running(pid) for pid in workers), "orphaned workers still running"
        invokes = slow.stats()["invokes"]
    assert invokes <= 4  # the finished host, the two running when the parent died, at most one more


def test_a_second_ctrl_c_ends_the_workers_at_once(users_file: Path) -> None:
    with FleetProcess(users_file, 8, scenarios=SCENARIOS, latency_ms=2000) as slow:
        proc, _ = _kill_everywhere(slow)
        workers = _children_of(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:  # wait until the first Ctrl-C was handled, so the two cannot merge
            if "Ctrl-C again" in line:
                break
        os.killpg(proc.pid, signal.SIGINT)  # do not wait for the running hosts
        out = proc.stdout.read()
        err = proc.stderr.read()
        proc.wait(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and CANARY_PASSWORD not in err
    assert workers and not any(_running(pid) for pid in workers)
    reported = [json.loads(line) for line in out.splitlines() if '"host"' in line]
    # The hosts whose KillJob was on the wire are reported at once, as such, not waited for.
    cut = [r for r in reported if r["error"] and "on the wire" in r["error"]["message"]]
    assert cut and all(r["changed"] is None for r in cut)
    assert all([(q["request"], q["outcome"]) for q in r["requests"]] == [("KillJob", "in flight")] for r in cut)


# At most: per slot, the host whose result was written before the close, the one whose write
# failed, and the next one it had already started by then.
@pytest.mark.parametrize(("processes", "most_started"), [(1, 4), (2, 6)])
def test_a_closed_output_stops_new_hosts_and_exits_141(users_file: Path, processes: int, most_started: int) -> None:
    # ``hvjob ... | head -1``: once results cannot be written, no further host is started.
    with FleetProcess(users_file, 8, scenarios=SCENARIOS, latency_ms=200) as slow:
        proc, _ = _kill_everywhere(slow, processes)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 141, err
        invokes = slow.stats()["invokes"]
    assert "output closed" in err and "Traceback" not in err
    assert invokes <= most_started  # not all 8


def test_plan_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "_usable_cpus", lambda: 4)
    monkeypatch.setattr(fanout, "_fork_is_safe", lambda: True)
    assert fanout.plan_processes(1000, 256) == 4  # one per CPU
    assert fanout.plan_processes(100, 32) == 2  # and per 64 hosts
    assert fanout.plan_processes(64, 32) == 1
    assert fanout.plan_processes(1000, 3) == 3  # each worker needs a concurrency slot
    assert fanout.plan_processes(5, 32, requested=8) == 5  # and a host
    assert fanout.plan_processes(1000, 256, requested=1) == 1
    monkeypatch.setattr(fanout, "_fork_is_safe", lambda: False)
    assert fanout.plan_processes(100, 32) == 1  # not chosen unless asked for
    assert fanout.plan_processes(100, 32, requested=2) == 2
    with pytest.raises(errors.UsageError):
        fanout.run("kill", [], lambda c: c.kill(KILLABLE), processes=0)


def test_fork_is_not_chosen_while_another_thread_runs() -> None:
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not fanout._fork_is_safe()
        assert fanout.plan_processes(1000, 256) == 1
    finally:
        release.set()
        other.join()
    # Alone again, the documented rule applies: one worker per usable CPU and per 64 hosts.
    assert threading.active_count() == 1, "a thread left over from another test"
    assert fanout.plan_processes(1000, 256) == min(fanout._usable_cpus(), 16)


def _instances() -> list[errors.HvjobError]:
    made: list[errors.HvjobError] = []
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not (isinstance(cls, type) and issubclass(cls, errors.HvjobError)):
            continue
        extra: dict[str, Any] = (
            {"method": "KillJob", "return_value": 4, "return_name": "Failed"} if cls is errors.MethodFailed else {}
        )
        if issubclass(cls, errors.WSManFault):
            extra = {"wsman_code": 0x80338000, "operation": "Invoke", "extended_status": {"a": None}}
        made.append(cls(f"{name} happened", host="node1", request_xml=b"<a/>", **extra))
    return made


@pytest.mark.parametrize("error", _instances(), ids=lambda e: type(e).__name__)
def test_every_error_crosses_a_process_boundary_intact(error: errors.HvjobError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    assert copy.__dict__ == error.__dict__ and copy.to_dict() == error.to_dict() and copy.type == error.type
