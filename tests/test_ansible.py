"""Real ansible-playbook runs of the hvjob.hyperv collection against the simulated cluster (NTLM,
HTTP with message encryption, or HTTPS), checked against the simulator's ground truth: its jobs
and the log of every method its providers executed. Each task's registered result is written to a
JSON file to assert on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import CANARY_PASSWORD, ROOT
from hvjob.testing import SimulatedCluster, free_port
from hvjob.testing.sim import default

pytest.importorskip("ansible", reason="ansible-core is not installed")
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
GONE_JOB = "0D2F0000-0000-4000-8000-00000000DEAD"  # on no node


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
    results: dict[int, Any]


@pytest.fixture
def sim() -> Iterator[SimulatedCluster]:
    with SimulatedCluster(speed=0, username="alice", password=CANARY_PASSWORD) as cluster:
        yield cluster


def methods(cluster: SimulatedCluster) -> list[tuple[str, str, str]]:
    """(node, method, job) of every method the simulator's providers executed, in order."""
    return [(entry["node"], entry["method"], entry["job"]) for entry in cluster.log()]


Playbook = Callable[..., Run]


@pytest.fixture
def playbook(tmp_path: Path) -> Playbook:
    """Run tasks on localhost against ``node`` of a simulated cluster (module_defaults name it)."""
    if not ANSIBLE_PLAYBOOK.exists() and shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-playbook not found beside this Python")
    secrets = tmp_path / "secrets.yml"

    def run(
        cluster: SimulatedCluster,
        tasks: list[dict[str, Any]],
        *args: str,
        node: str = "HVNODE01",
        password: str = CANARY_PASSWORD,
        defaults: dict[str, Any] | None = None,
    ) -> Run:
        secrets.write_text(yaml.safe_dump({"hv_password": password}))
        out_dir = tmp_path / "out"
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir()
        play = [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "module_defaults": {
                    "group/hvjob.hyperv.hyperv": {
                        "hostname": cluster.url(node),
                        "username": "alice",
                        "password": "{{ hv_password }}",
                        "operation_timeout": 5,
                        **(defaults or {}),
                    }
                },
                "tasks": save_results(tasks, out_dir),
            }
        ]
        (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
        command = [str(ANSIBLE_PLAYBOOK), "-e", f"@{secrets}", str(tmp_path / "play.yml"), *args]
        proc = subprocess.run(command, capture_output=True, text=True, env=ansible_env(tmp_path), timeout=180)
        return Run(proc.returncode, proc.stdout + proc.stderr, read_results(out_dir))

    return run


def save_results(tasks: list[dict[str, Any]], out_dir: Path) -> list[dict[str, Any]]:
    """Each task registered, errors ignored, and its result written to ``out_dir/INDEX.json``."""
    play_tasks: list[dict[str, Any]] = []
    for index, task in enumerate(tasks):
        play_tasks.append({**task, "register": f"r{index}", "ignore_errors": True})
        play_tasks.append(
            {
                "name": f"save result {index}",
                "ansible.builtin.copy": {"content": f"{{{{ r{index} | to_json }}}}", "dest": f"{out_dir}/{index}.json"},
                "check_mode": False,
            }
        )
    return play_tasks


def read_results(out_dir: Path) -> dict[int, Any]:
    return {int(p.stem): json.loads(p.read_text()) for p in out_dir.glob("*.json")}


def stop(job: str, **kw: Any) -> dict[str, Any]:
    return {"name": "stop the job", "hvjob.hyperv.job": {"job_id": job, "state": "stopped", **kw}}


def kill(job: str, **kw: Any) -> dict[str, Any]:
    return {"name": "kill the job", "hvjob.hyperv.job": {"job_id": job, "state": "killed", **kw}}


def assert_clean(run: Run) -> None:
    assert CANARY_PASSWORD not in run.output
    assert "Traceback" not in run.output
    for result in run.results.values():
        assert CANARY_PASSWORD not in json.dumps(result)


def test_stop_changes_then_is_idempotent_and_never_shows_the_password(
    sim: SimulatedCluster, playbook: Playbook
) -> None:
    first = playbook(sim, [stop(default.RUNNING)], "-vvvv")
    assert first.returncode == 0, first.output[-3000:]
    assert_clean(first)
    result = first.results[0]
    assert result["changed"] is True and not result.get("failed")
    assert (result["method"], result["return_value"], result["job_state"]) == ("RequestStateChange", 0, "Killed")
    assert result["return_name"] == "Completed"
    assert result["found"] is True and result["job"]["InstanceID"] == default.RUNNING
    assert result["job"]["JobState"] == 9  # read after the call, typed
    assert '"password": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"' in first.output  # -vvvv shows the arguments
    assert sim.job(default.RUNNING)["state"] == "Killed"
    assert methods(sim) == [("HVNODE01", "RequestStateChange", default.RUNNING)]

    second = playbook(sim, [stop(default.RUNNING)], "-vvv")
    assert second.returncode == 0
    assert_clean(second)
    again = second.results[0]
    assert again["changed"] is False and again["job_state"] == "Killed" and again["method"] == "Get"
    assert len(sim.log()) == 1  # one RequestStateChange over both runs


def test_check_mode_sends_no_method_call(sim: SimulatedCluster, playbook: Playbook) -> None:
    on_node2 = {"hostname": sim.url("HVNODE02")}
    run = playbook(sim, [stop(default.RUNNING), kill(default.LONG_RUNNING, **on_node2)], "--check")
    assert run.returncode == 0, run.output[-3000:]
    assert_clean(run)
    assert run.results[0]["changed"] is True and run.results[1]["changed"] is True
    assert run.results[0]["job_state"] == "Running"
    assert "would call RequestStateChange" in run.results[0]["notes"]
    assert "would call KillJob" in run.results[1]["notes"]
    assert sim.log() == []
    assert sim.job(default.RUNNING)["state"] == sim.job(default.LONG_RUNNING)["state"] == "Running"


def test_wrong_password_fails_cleanly(sim: SimulatedCluster, playbook: Playbook) -> None:
    run = playbook(sim, [stop(default.RUNNING)], "-vvvv", password="Wrong-" + CANARY_PASSWORD)
    assert_clean(run)
    result = run.results[0]
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("authentication:")
    assert result["error"]["type"] == "authentication"
    assert "module_stderr" not in result  # it failed on purpose, it did not crash
    assert "Traceback (most recent call last)" not in json.dumps(result)
    assert sim.log() == []


def test_a_node_that_refuses_connections_fails_its_task_with_a_typed_error(
    sim: SimulatedCluster, playbook: Playbook
) -> None:
    # docs/ansible.md: such a node is failed (not Ansible's unreachable), its error.type says why.
    url = sim.url("HVNODE01")
    refused = url.replace(f":{url.rsplit(':', 1)[1].split('/')[0]}/", f":{free_port()}/")
    run = playbook(sim, [stop(default.RUNNING, hostname=refused)])
    assert_clean(run)
    result = run.results[0]
    assert result["failed"] is True and result["changed"] is False and not result.get("unreachable")
    assert result["error"]["type"] == "connection" and result["msg"].startswith("connection:")
    assert sim.log() == []


def test_a_job_not_on_the_node_with_missing_ok_is_ok_and_without_it_fails(
    sim: SimulatedCluster, playbook: Playbook
) -> None:
    run = playbook(sim, [stop(default.RUNNING), kill(default.RUNNING), stop(GONE_JOB)], node="HVNODE02")
    assert_clean(run)
    ok, failed, gone = run.results[0], run.results[1], run.results[2]
    assert not ok.get("failed") and ok["changed"] is False and ok["found"] is False and ok["job"] == {}
    assert failed["failed"] is True and failed["error"]["type"] == "wsman_fault"
    assert failed["error"]["wsman_code"] == 2150858752  # 0x80338000: not here
    assert gone["changed"] is False and gone["found"] is False
    assert sim.log() == [] and sim.job(default.RUNNING)["state"] == "Running"


def test_killed_state_calls_killjob_once(sim: SimulatedCluster, playbook: Playbook) -> None:
    run = playbook(sim, [kill(default.LONG_RUNNING), kill(default.LONG_RUNNING)], node="HVNODE02")
    assert run.returncode == 0, run.output[-3000:]
    first, second = run.results[0], run.results[1]
    assert (first["changed"], first["method"], first["return_name"]) == (True, "KillJob", "Success")
    assert (second["changed"], second["method"]) == (False, "Get")
    assert methods(sim) == [("HVNODE02", "KillJob", default.LONG_RUNNING)]
    assert sim.job(default.LONG_RUNNING)["state"] == "Killed"


def test_delete_on_kill_deletes_and_missing_ok_makes_the_rerun_ok(sim: SimulatedCluster, playbook: Playbook) -> None:
    task = kill(default.LONG_RUNNING, delete_on_kill=True, missing_ok=True)
    run = playbook(sim, [task, task], node="HVNODE02")
    assert run.returncode == 0, run.output[-3000:]
    first, second = run.results[0], run.results[1]
    assert first["changed"] is True and first["job"] == {} and first["job_state"] is None  # deleted
    assert second["changed"] is False and second["found"] is False
    assert sim.job(default.LONG_RUNNING)["removed"] is True
    assert [entry["parameters"] for entry in sim.log()] == [{"DeleteOnKill": True}]


def test_job_info_lists_filters_and_shows(sim: SimulatedCluster, playbook: Playbook) -> None:
    run = playbook(
        sim,
        [
            {"hvjob.hyperv.job_info": {}},
            {"hvjob.hyperv.job_info": {"job_id": default.RUNNING}},
            {"hvjob.hyperv.job_info": {"job_id": GONE_JOB}},
            {"hvjob.hyperv.job_info": {"states": ["Sleeping"]}},
            {"hvjob.hyperv.job_info": {"states": ["Completed"], "older_than": "5m"}},
            {"hvjob.hyperv.job_info": {"job_id": default.RUNNING, "states": ["Completed"]}},
        ],
    )
    assert_clean(run)
    listed, shown, gone, bad, old, filtered = (run.results[i] for i in range(6))
    assert sorted(j["InstanceID"] for j in listed["jobs"]) == sorted([default.RUNNING, default.COMPLETED])
    assert listed["changed"] is False
    assert [j["InstanceID"] for j in shown["jobs"]] == [default.RUNNING]
    assert gone["jobs"] == [] and filtered["jobs"] == []
    assert bad["failed"] is True and bad["error"]["type"] == "usage" and "Sleeping" in bad["msg"]
    assert [j["InstanceID"] for j in old["jobs"]] == [default.COMPLETED]  # ran 610 s
    assert sim.log() == []


def test_job_info_values_are_typed(sim: SimulatedCluster, playbook: Playbook) -> None:
    running = {
        "name": "running, selected as the module's docs say",
        "ansible.builtin.set_fact": {
            "running": "{{ r0.jobs | selectattr('JobState', 'eq', 4) | map(attribute='InstanceID') | list }}"
        },
    }
    run = playbook(sim, [{"hvjob.hyperv.job_info": {}}, running], node="HVNODE03")
    assert_clean(run)
    jobs = run.results[0]["jobs"]
    assert {type(j["JobState"]) for j in jobs} == {int} and all(isinstance(j["Cancellable"], bool) for j in jobs)
    truth = sorted(j["id"] for j in sim.jobs() if j["node"] == "HVNODE03" and j["state"] == "Running")
    assert (
        sorted(run.results[1]["ansible_facts"]["running"])
        == truth
        == sorted([default.COMPLETING, default.NOT_CANCELLABLE])
    )


def test_a_stop_whose_wait_fails_fails_the_task_as_changed(playbook: Playbook) -> None:
    # An asynchronous RequestStateChange (4096) on a stopped clock: the job stays Shutting Down.
    with SimulatedCluster(
        speed=0, username="alice", password=CANARY_PASSWORD, profile={"request_state_change": "async"}
    ) as cluster:
        run = playbook(cluster, [stop(default.RUNNING, wait=True, timeout=1)])
        assert_clean(run)
        result = run.results[0]
        assert result["failed"] is True and result["changed"] is True  # handlers still run
        assert (result["method"], result["return_value"]) == ("RequestStateChange", 4096)
        assert result["error"]["type"] == "wait_timeout" and result["found"] is True
        assert methods(cluster) == [("HVNODE01", "RequestStateChange", default.RUNNING)]
        assert cluster.job(default.RUNNING)["state"] == "Shutting Down"


def test_found_is_null_when_nothing_could_be_read(sim: SimulatedCluster, playbook: Playbook) -> None:
    dead = {"hostname": f"127.0.0.1:{free_port()}", "scheme": "http", "connect_timeout": 2}
    result = playbook(sim, [stop(default.RUNNING, **dead)]).results[0]
    assert result["failed"] is True and result["error"]["type"] == "connection"
    assert result["found"] is None and result["changed"] is False


def test_options_default_to_the_hosts_winrm_variables_and_a_vaulted_password(
    sim: SimulatedCluster, tmp_path: Path
) -> None:
    """No option but job_id: the node, port, scheme, account and (vaulted) password are the
    inventory's usual WinRM variables, and the task runs on the controller without delegate_to."""
    vault_file = tmp_path / "vault-password"
    vault_file.write_text("vault-secret\n")
    env = ansible_env(tmp_path)
    encrypted = subprocess.run(
        [str(ANSIBLE_PLAYBOOK.with_name("ansible-vault")), "encrypt_string", "--vault-password-file", str(vault_file),
         "--name", "ansible_password", CANARY_PASSWORD],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    ).stdout  # fmt: skip
    hosts = {
        node: {"ansible_host": "127.0.0.1", "ansible_port": int(address.split(":")[1])}
        for node, address in sim.resolve.items()
    }
    inventory = {"hyperv": {"hosts": hosts, "vars": {"ansible_user": "alice", "ansible_winrm_scheme": "http"}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    group_vars = tmp_path / "group_vars"
    group_vars.mkdir()
    (group_vars / "hyperv.yml").write_text(encrypted)
    play = [{"hosts": "hyperv", "gather_facts": False, "tasks": [stop(default.RUNNING)]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(tmp_path / "inventory.yml"), "--vault-password-file", str(vault_file),
         str(tmp_path / "play.yml")],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert CANARY_PASSWORD not in proc.stdout + proc.stderr
    assert "changed: [HVNODE01]" in proc.stdout
    assert "ok: [HVNODE02]" in proc.stdout and "ok: [HVNODE03]" in proc.stdout
    assert methods(sim) == [("HVNODE01", "RequestStateChange", default.RUNNING)]


def test_galaxy_builds_the_collection_and_ansible_doc_renders(tmp_path: Path) -> None:
    env = ansible_env(tmp_path)
    collection = ROOT / "ansible_collections" / "hvjob" / "hyperv"
    galaxy = Path(sys.executable).with_name("ansible-galaxy")
    version = yaml.safe_load((collection / "galaxy.yml").read_text())["version"]
    build = subprocess.run(
        [str(galaxy), "collection", "build", str(collection), "--output-path", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    assert (tmp_path / f"hvjob-hyperv-{version}.tar.gz").is_file()
    ansible_doc = str(Path(sys.executable).with_name("ansible-doc"))
    for plugin_type, name in (
        ("module", "hvjob.hyperv.job"),
        ("module", "hvjob.hyperv.job_info"),
        ("inventory", "hvjob.hyperv.cluster"),
    ):
        doc = subprocess.run(
            [ansible_doc, "-t", plugin_type, name], capture_output=True, text=True, env=env, timeout=120
        )  # fmt: skip
        assert doc.returncode == 0 and "EXAMPLES" in doc.stdout, doc.stderr
        assert "[WARNING]" not in doc.stderr, doc.stderr
    module_doc = subprocess.run([ansible_doc, "hvjob.hyperv.job"], capture_output=True, text=True, env=env, timeout=120)
    assert "Defaults to the host's `ansible_host', else its `inventory_hostname'." in " ".join(
        module_doc.stdout.split()
    )


def docs_block(name: str) -> str:
    """The YAML block of docs/ansible.md that starts with ``# NAME``."""
    text = (ROOT / "docs" / "ansible.md").read_text()
    blocks = [b.split("\n```", 1)[0] for b in text.split("```yaml\n")[1:]]
    return next(b for b in blocks if b.startswith(f"# {name}"))


def test_the_cluster_playbook_in_docs_runs_as_written(pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "stop-export-job.yml").write_text(docs_block("stop-export-job.yml"))
    with SimulatedCluster(speed=0, username="alice", password=CANARY_PASSWORD, tls=pki.server_context()) as cluster:
        names = {"hvnode01": "HVNODE01", "hvnode02": "HVNODE02", "hvnode03": "HVNODE03"}
        inventory = yaml.safe_load(docs_block("inventory.yml").replace("!vault |\n      ...", "placeholder"))
        group = inventory["hyperv_cluster"]
        group["hosts"] = {
            name: {"ansible_host": "127.0.0.1", "ansible_port": int(cluster.resolve[node].split(":")[1])}
            for name, node in names.items()
        }
        group["vars"].update(
            ansible_user="alice",
            ansible_password="{{ lookup('ansible.builtin.env', 'TEST_HV_PASSWORD') }}",
            ansible_winrm_ca_trust_path=str(pki.ca_cert),
        )
        (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
        env = {**ansible_env(tmp_path), "TEST_HV_PASSWORD": CANARY_PASSWORD}
        args = ["-i", str(tmp_path / "inventory.yml"), str(tmp_path / "stop-export-job.yml"), "-e"]
        proc = subprocess.run(
            [str(ANSIBLE_PLAYBOOK), *args, f"job_id={default.RUNNING}"],
            capture_output=True, text=True, env=env, timeout=180,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert CANARY_PASSWORD not in proc.stdout + proc.stderr
        assert "changed: [hvnode01]" in proc.stdout
        assert "ok: [hvnode02]" in proc.stdout and "ok: [hvnode03]" in proc.stdout
        assert methods(cluster) == [("HVNODE01", "RequestStateChange", default.RUNNING)]
        assert cluster.job(default.RUNNING)["state"] == "Killed"

        missing = subprocess.run(
            [str(ANSIBLE_PLAYBOOK), *args, f"job_id={GONE_JOB}"], capture_output=True, text=True, env=env, timeout=180
        )
        assert missing.returncode != 0 and "was not found on any node" in missing.stdout
        assert len(cluster.log()) == 1

        # The node that has the job fails to stop it: the play fails there, and the last task does
        # not claim that no node had the job.
        cluster.inject(kind="fault", node="HVNODE02", method="RequestStateChange", fault="generic_failure")
        failing = subprocess.run(
            [str(ANSIBLE_PLAYBOOK), *args, f"job_id={default.LONG_RUNNING}"],
            capture_output=True, text=True, env=env, timeout=180,
        )  # fmt: skip
        assert failing.returncode != 0 and "fatal: [hvnode02]" in failing.stdout, failing.stdout[-3000:]
        assert "was not found" not in failing.stdout and "All assertions passed" in failing.stdout


def test_user_and_password_from_the_command_line_as_awx_gives_them(sim: SimulatedCluster, tmp_path: Path) -> None:
    """-u and --ask-pass (what AWX does with a machine credential) reach the modules through the
    play context when the inventory names no account."""
    hosts = {
        node: {"ansible_host": "127.0.0.1", "ansible_port": int(a.split(":")[1])} for node, a in sim.resolve.items()
    }
    inventory = {"hyperv": {"hosts": hosts, "vars": {"ansible_winrm_scheme": "http"}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    play = [{"hosts": "HVNODE02", "gather_facts": False, "tasks": [kill(default.LONG_RUNNING)]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(tmp_path / "inventory.yml"), "-u", "alice", "--ask-pass", str(tmp_path / "play.yml")],
        input=CANARY_PASSWORD + "\n", capture_output=True, text=True, env=ansible_env(tmp_path), timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert CANARY_PASSWORD not in proc.stdout + proc.stderr
    assert "changed: [HVNODE02]" in proc.stdout
    assert methods(sim) == [("HVNODE02", "KillJob", default.LONG_RUNNING)]
