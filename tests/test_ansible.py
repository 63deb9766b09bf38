"""Real ansible-playbook runs of the hvjob.hyperv collection against the fake server (NTLM, HTTP
with message encryption). Each task's registered result is written to a JSON file to assert on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import CANARY_PASSWORD, ROOT, SCENARIOS, job_id
from hvjob.testing import FakeWinRMServer

pytest.importorskip("ansible", reason="ansible-core is not installed")
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
DEMO_JOB = job_id(0x1)  # Running, then Killed after RequestStateChange or KillJob
GONE_JOB = job_id(0x331)  # stop_gone: not found


def ansible_env(tmp_path: Path) -> dict[str, str]:
    """Ansible confined to ``tmp_path``, finding this repository's collection; no ANSIBLE_ or
    HVJOB_ variables of the caller leak in."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "HVJOB_"))},
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "LC_ALL": "C.UTF-8",
    }


@dataclass
class Run:
    returncode: int
    output: str
    results: dict[str, Any]


@pytest.fixture
def server(users_file: Path) -> Iterator[FakeWinRMServer]:
    with FakeWinRMServer(SCENARIOS, users_file=users_file) as fake:
        yield fake


@pytest.fixture
def playbook(tmp_path: Path):  # type: ignore[no-untyped-def]
    if not ANSIBLE_PLAYBOOK.exists() and shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-playbook not found beside this Python")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    secrets = tmp_path / "secrets.yml"

    def run(server: FakeWinRMServer, tasks: list[dict[str, Any]], *args: str, password: str = CANARY_PASSWORD) -> Run:
        secrets.write_text(yaml.safe_dump({"hv_password": password}))
        out_dir = tmp_path / "out"
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir()
        play_tasks: list[dict[str, Any]] = []
        for index, task in enumerate(tasks):
            play_tasks.append({**task, "register": f"r{index}", "ignore_errors": True})
            play_tasks.append(
                {
                    "name": f"save result {index}",
                    "ansible.builtin.copy": {
                        "content": f"{{{{ r{index} | to_json }}}}",
                        "dest": f"{out_dir}/{index}.json",
                    },
                    "check_mode": False,
                }
            )
        play = [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "module_defaults": {
                    "group/hvjob.hyperv.hyperv": {
                        "hostname": f"127.0.0.1:{server.port}",
                        "scheme": "http",
                        "username": "alice",
                        "password": "{{ hv_password }}",
                        "operation_timeout": 5,
                    }
                },
                "tasks": play_tasks,
            }
        ]
        (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
        env = ansible_env(tmp_path)
        command = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), "-e", f"@{secrets}", str(tmp_path / "play.yml"), *args]
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
        results = {int(p.stem): json.loads(p.read_text()) for p in out_dir.glob("*.json")}
        return Run(proc.returncode, proc.stdout + proc.stderr, results)

    return run


def stop(job: str, **kw: Any) -> dict[str, Any]:
    return {"name": "stop the job", "hvjob.hyperv.job": {"job_id": job, "state": "stopped", **kw}}


def assert_clean(run: Run) -> None:
    assert CANARY_PASSWORD not in run.output
    assert "Traceback" not in run.output
    for result in run.results.values():
        assert CANARY_PASSWORD not in json.dumps(result)


def test_stop_changes_then_is_idempotent_and_never_shows_the_password(server: FakeWinRMServer, playbook) -> None:  # type: ignore[no-untyped-def]
    first = playbook(server, [stop(DEMO_JOB)], "-vvvv")
    assert first.returncode == 0, first.output[-3000:]
    assert_clean(first)
    result = first.results[0]
    assert result["changed"] is True and not result.get("failed")
    assert (result["method"], result["return_value"], result["job_state"]) == ("RequestStateChange", 0, "Killed")
    assert result["return_name"] == "Completed"
    assert result["found"] is True and result["job"]["InstanceID"] == DEMO_JOB
    assert '"password": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"' in first.output  # -vvvv shows the arguments

    second = playbook(server, [stop(DEMO_JOB)], "-vvv")
    assert second.returncode == 0
    assert_clean(second)
    again = second.results[0]
    assert again["changed"] is False and again["job_state"] == "Killed" and again["method"] == "Get"
    assert server.stats.invokes == 1  # one RequestStateChange over both runs


def test_check_mode_sends_no_method_call(server: FakeWinRMServer, playbook) -> None:  # type: ignore[no-untyped-def]
    # Two running jobs (a fixture steps through its states on every read, so one job per task).
    run = playbook(
        server, [stop(DEMO_JOB), {"hvjob.hyperv.job": {"job_id": job_id(0x300), "state": "killed"}}], "--check"
    )
    assert run.returncode == 0, run.output[-3000:]
    assert_clean(run)
    assert run.results[0]["changed"] is True and run.results[1]["changed"] is True
    assert run.results[0]["job_state"] == "Running"
    assert "would call RequestStateChange" in run.results[0]["notes"]
    assert "would call KillJob" in run.results[1]["notes"]
    assert server.stats.invokes == 0


def test_wrong_password_fails_cleanly(server: FakeWinRMServer, playbook) -> None:  # type: ignore[no-untyped-def]
    run = playbook(server, [stop(DEMO_JOB)], "-vvvv", password="Wrong-" + CANARY_PASSWORD)
    assert_clean(run)
    result = run.results[0]
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("authentication:")
    assert result["error"]["type"] == "authentication"
    assert "module_stderr" not in result  # the module failed on purpose, it did not crash
    assert "Traceback (most recent call last)" not in json.dumps(result)  # 2.19 says "(traceback unavailable)"


def test_gone_job_with_missing_ok_is_ok_and_without_it_fails(server: FakeWinRMServer, playbook) -> None:  # type: ignore[no-untyped-def]
    gone_kill = {"hvjob.hyperv.job": {"job_id": GONE_JOB, "state": "killed"}}
    run = playbook(server, [stop(GONE_JOB), gone_kill])
    assert_clean(run)
    ok, failed = run.results[0], run.results[1]
    assert not ok.get("failed") and ok["changed"] is False and ok["found"] is False and ok["job"] == {}
    assert failed["failed"] is True and failed["error"]["type"] == "wsman_fault"
    assert failed["error"]["wsman_code"] == 2150858752  # 0x80338000, the job is gone


def test_killed_state_calls_killjob_once(server: FakeWinRMServer, playbook) -> None:  # type: ignore[no-untyped-def]
    kill = {"hvjob.hyperv.job": {"job_id": DEMO_JOB, "state": "killed"}}
    run = playbook(server, [kill, kill])
    assert run.returncode == 0, run.output[-3000:]
    first, second = run.results[0], run.results[1]
    assert (first["changed"], first["method"], first["return_name"]) == (True, "KillJob", "Success")
    assert (second["changed"], second["method"]) == (False, "Get")
    assert [a.rsplit("/", 1)[-1] for a, _ in server.stats.served].count("KillJob") == 1


def test_job_info_lists_and_shows(server: FakeWinRMServer, playbook) -> None:  # type: ignore[no-untyped-def]
    run = playbook(
        server,
        [
            {"hvjob.hyperv.job_info": {}},
            {"hvjob.hyperv.job_info": {"job_id": DEMO_JOB}},
            {"hvjob.hyperv.job_info": {"job_id": GONE_JOB}},
            {"hvjob.hyperv.job_info": {"states": ["Sleeping"]}},
        ],
    )
    assert_clean(run)
    listed, shown, gone, bad = (run.results[i] for i in range(4))
    assert [j["InstanceID"] for j in listed["jobs"]] == [job_id(0x400 + i) for i in range(5)]
    assert listed["changed"] is False
    assert [j["InstanceID"] for j in shown["jobs"]] == [DEMO_JOB]
    assert gone["jobs"] == []
    assert bad["failed"] is True and bad["error"]["type"] == "usage" and "Sleeping" in bad["msg"]
    assert server.stats.invokes == 0


def test_galaxy_builds_the_collection_and_ansible_doc_renders(tmp_path: Path) -> None:
    env = ansible_env(tmp_path)
    collection = ROOT / "ansible_collections" / "hvjob" / "hyperv"
    galaxy = Path(sys.executable).with_name("ansible-galaxy")
    build = subprocess.run(
        [str(galaxy), "collection", "build", str(collection), "--output-path", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    assert (tmp_path / "hvjob-hyperv-0.1.0.tar.gz").is_file()
    for module in ("hvjob.hyperv.job", "hvjob.hyperv.job_info"):
        doc = subprocess.run(
            [str(Path(sys.executable).with_name("ansible-doc")), module],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert doc.returncode == 0 and "hostname" in doc.stdout and "EXAMPLES" in doc.stdout, doc.stderr
        assert "default(inventory_hostname'" not in doc.stdout  # V(...) markup closed at the ")" inside it
        assert "its `inventory_hostname' when it has none" in " ".join(doc.stdout.split())


def test_the_cluster_playbook_in_docs_runs_as_written(users_file: Path, pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = (ROOT / "docs" / "ansible.md").read_text()
    blocks = text.split("```yaml\n")[1:]
    play = next(b.split("\n```", 1)[0] for b in blocks if b.startswith("# stop-export-job.yml"))
    (tmp_path / "stop-export-job.yml").write_text(play)
    with (
        FakeWinRMServer(SCENARIOS, users_file=users_file, tls=pki.server_context()) as owner,
        FakeWinRMServer([], users_file=users_file, tls=pki.server_context()) as other1,
        FakeWinRMServer([], users_file=users_file, tls=pki.server_context()) as other2,
    ):
        nodes = {"hvnode01": owner, "hvnode02": other1, "hvnode03": other2}
        inventory = {
            "hyperv_cluster": {
                "hosts": {name: {"ansible_host": "127.0.0.1", "ansible_port": s.port} for name, s in nodes.items()},
                "vars": {
                    "ansible_connection": "local",
                    "ansible_user": "alice",
                    "ansible_password": "{{ lookup('ansible.builtin.env', 'TEST_HV_PASSWORD') }}",
                    "ansible_winrm_ca_trust_path": str(pki.ca_cert),
                },
            }
        }
        (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
        env = {**ansible_env(tmp_path), "TEST_HV_PASSWORD": CANARY_PASSWORD}
        args = [
            "-i",
            str(tmp_path / "inventory.yml"),
            str(tmp_path / "stop-export-job.yml"),
            "-e",
            f"job_id={DEMO_JOB}",
        ]
        proc = subprocess.run([str(ANSIBLE_PLAYBOOK), *args], capture_output=True, text=True, env=env, timeout=180)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert CANARY_PASSWORD not in proc.stdout + proc.stderr
        assert "changed: [hvnode01 -> localhost]" in proc.stdout
        assert "ok: [hvnode02 -> localhost]" in proc.stdout and "ok: [hvnode03 -> localhost]" in proc.stdout
        assert owner.stats.invokes == 1 and other1.stats.invokes == 0

        missing = subprocess.run(
            [str(ANSIBLE_PLAYBOOK), *args[:-1], "job_id=00000000-0000-0000-0000-000000000000"],
            capture_output=True, text=True, env=env, timeout=180,
        )  # fmt: skip
        assert missing.returncode != 0 and "was not found on any node" in missing.stdout


def test_a_stop_whose_wait_fails_fails_the_task_as_changed(server: FakeWinRMServer, playbook) -> None:  # type: ignore[no-untyped-def]
    run = playbook(server, [stop(job_id(0x303), wait=True, timeout=1)])  # accepted (4096), then still Running
    assert_clean(run)
    result = run.results[0]
    assert result["failed"] is True and result["changed"] is True  # handlers still run
    assert (result["method"], result["return_value"]) == ("RequestStateChange", 4096)
    assert result["error"]["type"] == "wait_timeout" and result["found"] is True


def test_found_is_null_when_nothing_could_be_read(server: FakeWinRMServer, playbook) -> None:  # type: ignore[no-untyped-def]
    from hvjob.testing import free_port

    dead = {"hvjob.hyperv.job": {"job_id": DEMO_JOB, "state": "stopped", "hostname": f"127.0.0.1:{free_port()}"}}
    result = playbook(server, [dead]).results[0]
    assert result["failed"] is True and result["error"]["type"] == "connection"
    assert result["found"] is None and result["changed"] is False


def test_job_info_values_are_typed(server: FakeWinRMServer, playbook) -> None:  # type: ignore[no-untyped-def]
    running = {
        "name": "running, selected as the module's docs say",
        "ansible.builtin.set_fact": {
            "running": "{{ r0.jobs | selectattr('JobState', 'eq', 4) | map(attribute='InstanceID') | list }}"
        },
    }
    run = playbook(server, [{"hvjob.hyperv.job_info": {}}, running])
    assert_clean(run)
    jobs = run.results[0]["jobs"]
    assert {type(j["JobState"]) for j in jobs} == {int} and all(isinstance(j["Cancellable"], bool) for j in jobs)
    assert run.results[1]["ansible_facts"]["running"] == [job_id(0x400), job_id(0x401), job_id(0x404)]
