"""The chaos run at its CI size: every operation's report judged by the simulator's ground truth.

tests/chaos_engine.py does the work (its docstring says how); this runs it once for the module,
bounded for CI (``HVJOB_CHAOS_OPERATIONS``, default 1,000 library operations;
``HVJOB_CHAOS_CLI``, 40 ``hvjob`` subprocesses; ``HVJOB_CHAOS_NODES``, 24; ``HVJOB_CHAOS_SEED``),
and then proves the judge able to fail: each false report of a kind it must catch, planted in a
copy of the run's records, is caught and named. bench/chaos.py runs it larger (docs/reliability.md).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from chaos_engine import FAULTS, MUTATING, ChaosConfig, ChaosRun, Judge, Operation, chaos, format_table, make_plan
from conftest import CANARY_PASSWORD, ROOT

pytestmark = pytest.mark.chaos

VERDICTS = ("changed", "unchanged", "unknown", "gone", "failed", "read", "check")


@pytest.fixture(scope="module")
def judged() -> Judge:
    config = ChaosConfig(
        seed=int(os.environ.get("HVJOB_CHAOS_SEED", "20261201")),
        operations=int(os.environ.get("HVJOB_CHAOS_OPERATIONS", "1000")),
        cli_operations=int(os.environ.get("HVJOB_CHAOS_CLI", "40")),
        nodes=int(os.environ.get("HVJOB_CHAOS_NODES", "24")),
        password=CANARY_PASSWORD,  # the canary: a result or a CLI output holding it is a mismatch
    )
    return chaos(config)


def test_every_report_is_what_happened(judged: Judge) -> None:
    summary = judged.summary()
    print(format_table(judged))  # shown with -s, and with the failure below
    mismatches = summary["mismatches"]
    assert mismatches == [], f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:40])
    run = judged.run
    assert len(judged.verdicts) == len(run.plan) == summary["operations"]  # every operation judged once
    assert summary["cli_operations"] == run.config.cli_operations > 0
    assert set(summary["commands"]) == {"stop", "kill", "wait", "list", "stop-all", "stop-hosts"} | {
        "cluster-stop",
        "cluster-stop-all",
    }
    fired_rows = set(summary["table"]) - {"none"}
    assert fired_rows == set(FAULTS), f"fault kinds that never fired: {set(FAULTS) - fired_rows}"
    assert set(summary["verdicts"]) == set(VERDICTS)  # each kind of outcome was met, and none was a mismatch
    assert summary["executed_methods"] > 0 and summary["profiles"] > 1
    resources = summary["resources"]
    assert resources["fds_after"] <= resources["fds_before"] and resources["objects_left"] == {}
    assert resources["threads_after"] <= resources["threads_before"]


def test_the_plan_follows_from_the_seed() -> None:
    nodes = [f"HVNODE{n:02d}" for n in range(1, 25)]
    initial = {node: [f"JOB-{node}"] for node in nodes}

    def plan(seed: int) -> list[str]:
        config = ChaosConfig(seed=seed, operations=300, cli_operations=20)
        return [repr(op) for op in make_plan(config, nodes, initial)]

    assert plan(7) == plan(7) and plan(7) != plan(8)
    ops = make_plan(ChaosConfig(seed=7, operations=300, cli_operations=20), nodes, initial)
    control = nodes[-1]
    taken_away = [f for op in ops for f in op.faults if f.kind in ("refused", "restart", "idle_close")]
    assert taken_away and all(f.node != control for f in taken_away)  # the control API's node stays up


# --- the judge can fail: each false report planted is caught ---------------------------------------------


def _planted(
    judged: Judge, choose: Callable[[Operation, Judge], bool], plant: Callable[[Operation, ChaosRun], None]
) -> list[str]:
    """The mismatches of a copy of the run in which ``plant`` falsified the first operation ``choose``
    accepts; each names that operation."""
    original = next((v.op for v in judged.verdicts if choose(v.op, judged)), None)
    assert original is not None, "the run has no operation to plant this in"
    run = copy.copy(judged.run)
    run.plan = copy.deepcopy(judged.run.plan)
    run.log = copy.deepcopy(judged.run.log)
    op = run.plan[original.index]
    plant(op, run)
    found = Judge(run).judge().mismatches()
    assert found, f"a false report in {op.describe()} went unnoticed"
    assert any(f"op {op.index} " in m or f"op {op.index})" in m for m in found), found
    return found


def _verdict(kind: str, *, front: str = "library", command: str | None = None) -> Callable[[Operation, Judge], bool]:
    def choose(op: Operation, judged: Judge) -> bool:
        verdict = judged.verdicts[op.index].verdict
        return verdict == kind and op.front == front and (command is None or op.command == command)

    return choose


def _result(op: Operation) -> dict[str, Any]:
    return op.results[0][1]


def _mutating(op: Operation) -> dict[str, Any]:
    return next(q for q in _result(op)["requests"] if q["request"] in MUTATING)


def test_a_change_reported_as_none_is_caught(judged: Judge) -> None:
    found = _planted(judged, _verdict("changed", command="stop"), lambda op, _: _result(op).update(changed=False))
    assert any("unchanged, but the node executed" in m for m in found)


def test_nothing_done_reported_as_a_change_is_caught(judged: Judge) -> None:
    found = _planted(judged, _verdict("unchanged", command="stop"), lambda op, _: _result(op).update(changed=True))
    assert any("changed, but the node accepted 0" in m for m in found)


def test_an_unknown_outcome_no_fault_hid_is_caught(judged: Judge) -> None:
    def plant(op: Operation, _: ChaosRun) -> None:
        _mutating(op)["outcome"] = "unknown"
        _result(op)["changed"] = None

    choose = _verdict("changed", command="kill")
    found = _planted(judged, lambda op, j: choose(op, j) and op.fault is None, plant)
    assert any("no fault hid its answer" in m for m in found)


def test_a_request_left_out_of_the_report_is_caught(judged: Judge) -> None:
    def plant(op: Operation, _: ChaosRun) -> None:
        _result(op)["requests"] = [q for q in _result(op)["requests"] if q["request"] not in MUTATING]

    found = _planted(judged, _verdict("changed", command="kill"), plant)
    assert any("no operation reported sending it" in m for m in found)


def test_a_blind_resend_is_caught(judged: Judge) -> None:
    def plant(op: Operation, run: ChaosRun) -> None:
        mid = _mutating(op)["message_id"]
        run.log.append(dict(next(e for e in run.log if e["message_id"] == mid)))

    found = _planted(judged, _verdict("changed", command="stop"), plant)
    assert any("a blind resend" in m for m in found)


def test_a_method_sent_in_check_mode_is_caught(judged: Judge) -> None:
    found = _planted(judged, _verdict("changed", command="stop"), lambda op, _: setattr(op, "check", True))
    assert any("check mode sent" in m for m in found)


def test_a_job_reported_gone_that_is_there_is_caught(judged: Judge) -> None:
    def there(op: Operation, judged: Judge) -> bool:
        after = op.after[op.nodes[0]].get(op.job or "")
        return _verdict("unchanged", command="stop")(op, judged) and after is not None and not after["removed"]

    found = _planted(judged, there, lambda op, _: _result(op).update(gone=True))
    assert any("reported gone" in m for m in found)


def test_a_wrong_final_state_is_caught(judged: Judge) -> None:
    def killed(op: Operation, judged: Judge) -> bool:
        return _verdict("unchanged", command="stop")(op, judged) and _result(op)["job_state"] == "Killed"

    found = _planted(judged, killed, lambda op, _: _result(op).update(job_state="Completed"))
    assert any("reported Completed" in m for m in found)


def test_a_stop_reported_ok_while_the_job_runs_on_is_caught(judged: Judge) -> None:
    def refused(op: Operation, judged: Judge) -> bool:
        after = op.after[op.nodes[0]].get(op.job or "")
        running = after is not None and after["state"] == "Running"
        return _verdict("failed", command="stop")(op, judged) and running and _result(op)["changed"] is False

    found = _planted(judged, refused, lambda op, _: _result(op).update(status="ok", error=None))
    assert any("reported ok" in m and "did not stop" in m for m in found)


def test_a_job_left_out_of_a_list_is_caught(judged: Judge) -> None:
    def listed(op: Operation, judged: Judge) -> bool:
        return _verdict("read", command="list")(op, judged) and bool(_result(op)["jobs"])

    found = _planted(judged, listed, lambda op, _: _result(op)["jobs"].pop(0))
    assert any("listed no" in m and "there throughout" in m for m in found)


def test_a_host_that_answered_reported_unreachable_is_caught(judged: Judge) -> None:
    def spoiled(op: Operation, judged: Judge) -> bool:
        return op.fault is not None and op.fault.kind == "malformed" and judged.verdicts[op.index].fault == "malformed"

    found = _planted(judged, spoiled, lambda op, _: _result(op).update(status="unreachable"))
    assert any("reported unreachable, but the node sent an answer" in m for m in found)


def test_a_wrong_exit_status_and_a_leaked_password_are_caught(judged: Judge) -> None:
    found = _planted(judged, _verdict("changed", front="cli"), lambda op, _: setattr(op, "exit_code", 3))
    assert any("exit status 3" in m for m in found)
    found = _planted(judged, _verdict("read", front="cli"), lambda op, _: setattr(op, "stderr", CANARY_PASSWORD))
    assert any("the password is on stderr" in m for m in found)


def test_the_bench_runs_its_seeds_and_combines_them() -> None:
    """bench/chaos.py keeps working (a tiny run; the first seed with its memory traced)."""
    command = [sys.executable, str(ROOT / "bench" / "chaos.py"), "--json", "--seeds", "5,6", "--operations", "30"]
    done = subprocess.run(
        [*command, "--cli-operations", "1", "--nodes", "4"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["runs"] == 2 and report["seeds"] == [5, 6] and report["operations"] == 62
    assert report["mismatches"] == [] and sum(sum(row.values()) for row in report["table"].values()) == 62
    assert report["memory_early_late_bytes"] is not None  # the first run traced hvjob's memory
