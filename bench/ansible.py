"""Measure the hvjob.hyperv collection across a simulated cluster, and the CLI doing the same work.

    python bench/ansible.py --json [--nodes 200] [--forks 50] [--runs 3]

Prints one JSON object (docs/performance.md, "Ansible"). The cluster runs in a fleet process of
its own (``python -m hvjob.testing.fleet --simulate``, speed 0: nothing changes but what the
clients do), one running export per node. Four workloads, interleaved, each checked host by host
against the simulator's ground truth (its jobs and its method log), never by what was printed:

- ``ansible_stop``: a play over every node with ``forks``, one task ``hvjob.hyperv.job`` stopping
  one job; only its node may change it, the others report it not found, and the log must show one
  RequestStateChange on that node.
- ``ansible_sweep``: the same play with ``hvjob.hyperv.job_info`` ``states: [Running]``; each node's
  list must be the running jobs the simulator has on it.
- ``cli_stop`` and ``cli_sweep``: ``hvjob --cluster stop SEED --job ID`` and ``hvjob --cluster list
  SEED --state Running``, discovering the nodes and reaching them through ``--resolve``.
- ``ansible_baseline``: the same play with ``ansible.builtin.debug``, which does no work: what
  ansible-core itself costs per host at this inventory size.
- ``modules_vs_action``: the sweep on the first ``--module-hosts`` nodes twice, as the collection
  runs it (its action plugins, in the controller's process) and as plain modules (a copy of the
  collection without plugins/action, tasks delegated to localhost: a Python process per host).

Each stop stops another node's job, so that every run starts from the same state. Timings are
measured here, never asserted by tests (tests/test_ansible_scale.py runs the same workloads once).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

# Run as a script, this file's directory is first on sys.path, where "ansible" would be this file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from hvjob.testing.fleet import FleetProcess  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
_NOT_COPIED = shutil.ignore_patterns("action", "output", "__pycache__")
BIN = Path(sys.executable).parent
USER = "bench"
CLUSTER = "HVCLUSTER"


def job_of(index: int) -> str:
    """The running export of node ``index`` (from 1) in the bench's cluster."""
    return f"0D2F5C1A-7E3B-4A9D-9000-{index:012d}"


def write_cluster(path: Path, nodes: int) -> None:
    """A cluster file: ``nodes`` nodes, the clock stopped, one running export on each node."""
    width = max(2, len(str(nodes)))
    jobs = [
        {"id": job_of(n), "node": f"HVNODE{n:0{width}d}", "state": "Running", "percent": 20, "elapsed": 60}
        for n in range(1, nodes + 1)
    ]
    path.write_text(yaml.safe_dump({"cluster": CLUSTER, "nodes": nodes, "speed": 0, "jobs": jobs}))


class Bench:
    """A simulated cluster in a fleet process, an Ansible inventory of it, and the environment."""

    def __init__(self, workdir: Path, nodes: int, forks: int) -> None:
        self.workdir = workdir
        self.password = secrets.token_urlsafe(18)
        users = workdir / "users.txt"
        users.write_text(f":{USER}:{self.password}\n")
        users.chmod(0o600)
        write_cluster(workdir / "cluster.yml", nodes)
        self.fleet = FleetProcess(users, nodes, simulate=str(workdir / "cluster.yml"))
        self.nodes = list(self.fleet.nodes)
        self.resolve = {node: str(urlsplit(url).netloc) for node, url in self.fleet.nodes.items()}
        hosts = {
            node: {"ansible_host": address.split(":")[0], "ansible_port": int(address.split(":")[1])}
            for node, address in self.resolve.items()
        }
        inventory = {CLUSTER: {"hosts": hosts, "vars": {"ansible_user": USER, "ansible_winrm_scheme": "http"}}}
        (workdir / "inventory.yml").write_text(yaml.safe_dump(inventory))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "HVJOB_"))},
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT),
            "ANSIBLE_HOME": str(workdir / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
            "ANSIBLE_FORKS": str(forks),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "HVJOB_PASSWORD": self.password,  # the modules' and the CLI's fallback; never a variable
            "LC_ALL": "C.UTF-8",
        }

    def close(self) -> None:
        self.fleet.close()

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the workloads: each returns its wall time and the problems found against the ground truth --

    def _play(
        self, name: str, task: dict[str, Any], *, hosts: int | None = None, env: dict[str, str] | None = None
    ) -> tuple[float, dict[str, Any], str]:
        """Run one task on every node (or the first ``hosts``); the per-host results, as Ansible's
        own ``tree`` callback writes them (a file per host, from the controller: no extra task)."""
        results = self.workdir / f"{name}-results"
        shutil.rmtree(results, ignore_errors=True)
        play = [{"hosts": CLUSTER, "gather_facts": False, "tasks": [{**task, "ignore_errors": True}]}]
        playbook = self.workdir / f"{name}.yml"
        playbook.write_text(yaml.safe_dump(play, sort_keys=False))
        command = [str(BIN / "ansible-playbook"), "-i", str(self._inventory(hosts)), str(playbook)]
        tree = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree", "ANSIBLE_CALLBACK_TREE_DIR": str(results)}
        start = time.monotonic()
        environment = {**(env or self.env), **tree}
        done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=900, check=False)
        wall = time.monotonic() - start
        output = done.stdout + done.stderr
        if done.returncode != 0 or not results.is_dir():
            raise RuntimeError(f"ansible-playbook failed ({done.returncode}):\n{output[-3000:]}")
        found = {path.name: json.loads(path.read_text()) for path in results.iterdir()}
        return wall, found, output

    def _inventory(self, hosts: int | None) -> Path:
        """The inventory of every node, or of the first ``hosts`` (a file of its own: a long
        ``--limit`` costs ansible-core more than the hosts it leaves out)."""
        path = self.workdir / (f"inventory-{hosts}.yml" if hosts else "inventory.yml")
        if not path.exists():
            inventory = yaml.safe_load((self.workdir / "inventory.yml").read_text())
            chosen = set(self.nodes[:hosts])
            inventory[CLUSTER]["hosts"] = {k: v for k, v in inventory[CLUSTER]["hosts"].items() if k in chosen}
            path.write_text(yaml.safe_dump(inventory))
        return path

    def ansible_stop(self, index: int) -> dict[str, Any]:
        job, owner = job_of(index), self.nodes[index - 1]
        log_before = len(self.fleet.log())
        wall, results, output = self._play("stop", {"hvjob.hyperv.job": {"job_id": job, "state": "stopped"}})
        problems = self._stop_problems(job, owner, log_before)
        for host in self.nodes:
            result = results.get(host) or {}
            mine = host == owner
            if result.get("failed") or result.get("changed") is not mine or result.get("found") is not mine:
                problems.append(f"{host}: {json.dumps({k: result.get(k) for k in ('changed', 'found', 'msg')})}")
        problems += [f"output: {self.password!r} appeared"] if self.password in output else []
        return {"wall_s": round(wall, 2), "hosts": len(results), "problems": problems}

    def ansible_sweep(self, hosts: int | None = None, *, as_modules: bool = False) -> dict[str, Any]:
        task: dict[str, Any] = {"hvjob.hyperv.job_info": {"states": ["Running"]}}
        env = None
        if as_modules:  # the collection without its action plugins: the modules run as modules
            copy = self.workdir / "as-modules" / "ansible_collections" / "hvjob" / "hyperv"
            if not copy.exists():
                shutil.copytree(ROOT / "ansible_collections" / "hvjob" / "hyperv", copy, ignore=_NOT_COPIED)
            env = {**self.env, "ANSIBLE_COLLECTIONS_PATH": str(self.workdir / "as-modules")}
            task["hvjob.hyperv.job_info"].update(  # a module sees no host variables: 0.1.0's playbooks
                hostname="{{ ansible_host }}",
                port="{{ ansible_port }}",
                scheme="{{ ansible_winrm_scheme }}",
                username="{{ ansible_user }}",
            )
            task.update(delegate_to="localhost", vars={"ansible_python_interpreter": "{{ ansible_playbook_python }}"})
        chosen = self.nodes[:hosts] if hosts else self.nodes
        wall, results, output = self._play("sweep", task, hosts=hosts, env=env)
        truth = self._running_by_node()
        problems = []
        for host in chosen:
            result = results.get(host) or {}
            listed = sorted(job["InstanceID"] for job in result.get("jobs") or [])
            if result.get("failed") or listed != truth.get(host, []):
                problems.append(f"{host}: listed {listed}, the simulator has {truth.get(host, [])}")
        problems += [f"output: {self.password!r} appeared"] if self.password in output else []
        return {
            "wall_s": round(wall, 2),
            "hosts": len(results),
            "jobs": sum(map(len, truth.values())),
            "problems": problems,
        }

    def ansible_baseline(self) -> dict[str, Any]:
        wall, results, _ = self._play("baseline", {"ansible.builtin.debug": {"msg": "{{ inventory_hostname }}"}})
        problems = [f"{host}: no result" for host in self.nodes if host not in results]
        return {"wall_s": round(wall, 2), "hosts": len(results), "problems": problems}

    def _cli(self, *args: str) -> tuple[float, dict[str, Any]]:
        resolve = [f"--resolve={node}={address}" for node, address in self.resolve.items()]
        command = [str(BIN / "hvjob"), "--scheme", "http", "-u", USER, "--cluster", *resolve, "--output", "json", *args]
        start = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=900, check=False)
        wall = time.monotonic() - start
        if done.returncode != 0:
            raise RuntimeError(f"hvjob failed ({done.returncode}):\n{done.stderr[-3000:]}")
        report: dict[str, Any] = json.loads(done.stdout)
        return wall, report

    def cli_stop(self, index: int) -> dict[str, Any]:
        job, owner = job_of(index), self.nodes[index - 1]
        log_before = len(self.fleet.log())
        wall, report = self._cli("stop", self.nodes[0], "--job", job)
        problems = self._stop_problems(job, owner, log_before)
        for result in report["results"]:
            mine = result["host"] == owner
            if result["status"] != "ok" or result["changed"] is not mine:
                problems.append(f"{result['host']}: {result['status']}, changed {result['changed']}")
        return {"wall_s": round(wall, 2), "hosts": len(report["results"]), "problems": problems}

    def cli_sweep(self) -> dict[str, Any]:
        wall, report = self._cli("list", self.nodes[0], "--state", "Running")
        truth = self._running_by_node()
        problems = []
        for result in report["results"]:
            listed = sorted(job["InstanceID"] for job in result.get("jobs") or [])
            if result["status"] != "ok" or listed != truth.get(result["host"], []):
                problems.append(f"{result['host']}: listed {listed}, the simulator has {truth.get(result['host'], [])}")
        return {"wall_s": round(wall, 2), "hosts": len(report["results"]), "problems": problems}

    # --- the ground truth ------------------------------------------------------------------------------

    def _stop_problems(self, job: str, owner: str, log_before: int) -> list[str]:
        state = next((j["state"] for j in self.fleet.jobs() if j["id"] == job), None)
        calls = [(e["node"], e["method"], e["job"]) for e in self.fleet.log()[log_before:]]
        problems = [] if state == "Killed" else [f"{job} is {state}, not Killed"]
        if calls != [(owner, "RequestStateChange", job)]:
            problems.append(f"methods executed: {calls}")
        return problems

    def _running_by_node(self) -> dict[str, list[str]]:
        running: dict[str, list[str]] = {}
        for job in self.fleet.jobs():
            if job["state"] == "Running":
                running.setdefault(job["node"], []).append(job["id"])
        return {node: sorted(ids) for node, ids in running.items()}


WORKLOADS = ("ansible_stop", "ansible_sweep", "ansible_baseline", "cli_stop", "cli_sweep")


def measure(nodes: int, forks: int, runs: int, module_hosts: int) -> dict[str, Any]:
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in WORKLOADS}
    with tempfile.TemporaryDirectory(prefix="hvjob-bench-ansible-") as tmp, Bench(Path(tmp), nodes, forks) as bench:
        picks = [
            max(1, nodes * (2 * r + 1) // (2 * runs * 2)) for r in range(runs)
        ]  # distinct nodes, in the first half
        workloads: list[tuple[str, Callable[[], dict[str, Any]]]] = []
        for pick in picks:
            workloads += [
                ("ansible_stop", functools.partial(bench.ansible_stop, pick)),
                ("cli_stop", functools.partial(bench.cli_stop, nodes - pick + 1)),  # the mirror node: another job
                ("ansible_sweep", bench.ansible_sweep),
                ("cli_sweep", bench.cli_sweep),
                ("ansible_baseline", bench.ansible_baseline),
            ]
        for name, workload in workloads:
            rows[name].append(workload())
        compared: dict[str, Any] = {}
        if module_hosts:
            action = bench.ansible_sweep(module_hosts)
            module = bench.ansible_sweep(module_hosts, as_modules=True)
            compared = {
                "hosts": module_hosts,
                "action_plugins_wall_s": action["wall_s"],
                "modules_wall_s": module["wall_s"],
                "modules_vs_action": round(module["wall_s"] / action["wall_s"], 1),
                "correct": not action["problems"] and not module["problems"],
                "problems": (action["problems"] + module["problems"])[:20],
            }
    summary: dict[str, Any] = {}
    for name, measured in rows.items():
        walls = [row["wall_s"] for row in measured]
        summary[name] = {
            "wall_s": round(statistics.median(walls), 2),
            "all_wall_s": walls,
            "hosts": measured[0]["hosts"],
            "correct": all(not row["problems"] for row in measured),
            "problems": [p for row in measured for p in row["problems"]][:20],
        }
    for kind in ("stop", "sweep"):
        ratio = summary[f"ansible_{kind}"]["wall_s"] / summary[f"cli_{kind}"]["wall_s"]
        summary[f"{kind}_ansible_vs_cli"] = round(ratio, 1)
    if compared:
        summary["modules_vs_action"] = compared
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--module-hosts", type=int, default=50, help="hosts of the modules-vs-action sweep (0: none)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (the default prints it too)")
    args = parser.parse_args()
    from ansible.release import __version__ as ansible_core_version  # the real one: this directory is off sys.path

    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ansible_core": ansible_core_version},
        "nodes": args.nodes,
        "forks": args.forks,
        "runs": args.runs,
        **measure(args.nodes, args.forks, args.runs, min(args.module_hosts, args.nodes)),
    }
    print(json.dumps(report, indent=2))
    checked = [report[k] for k in (*WORKLOADS, "modules_vs_action") if k in report]
    correct = all(row["correct"] for row in checked)
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
