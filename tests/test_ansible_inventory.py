"""The hvjob.hyperv.cluster inventory plugin through the real ansible-inventory command (and the
hvjob CLI's --inventory), against the simulated cluster; and the library's discover_cluster it uses."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import CANARY_PASSWORD
from hvjob.errors import HvjobError
from hvjob.fanout import ClusterInfo, ClusterNode, HostTarget, discover_cluster
from hvjob.testing import SimulatedCluster
from hvjob.testing.sim import default
from test_ansible import ansible_env

pytest.importorskip("ansible", reason="ansible-core is not installed")
BIN = Path(sys.executable).parent


@pytest.fixture
def sim() -> Iterator[SimulatedCluster]:
    with SimulatedCluster(speed=0, username="alice", password=CANARY_PASSWORD, name="HVCLU01") as cluster:
        yield cluster


def write_source(tmp_path: Path, cluster: SimulatedCluster, **config: Any) -> Path:
    data = {
        "plugin": "hvjob.hyperv.cluster",
        "seeds": ["HVNODE03"],
        "resolve": cluster.resolve,
        "scheme": "http",
        "username": "alice",
        **config,
    }
    path = tmp_path / "cluster.hvjob.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def inventory_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # A source that fails is an error, not a warning and an empty inventory.
    return {**ansible_env(tmp_path), "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1", **extra}


def trusted(value: dict[str, Any]) -> Any:
    """ansible-inventory's JSON marks strings not to be templated (ansible-core 2.19 marks every
    string an inventory plugin gives) as ``{"__ansible_unsafe": text}``; the text."""
    return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else value


def test_discover_cluster_names_the_cluster_and_its_nodes_with_their_state(sim: SimulatedCluster) -> None:
    info = discover_cluster(HostTarget("seed", sim.url("HVNODE02"), sim.connection_options()))
    assert info == ClusterInfo("HVCLU01", [ClusterNode(n, 0) for n in ("HVNODE01", "HVNODE02", "HVNODE03")])
    assert info.nodes[0].state_label == "Up"
    assert [ClusterNode("x", s).state_label for s in (-1, 1, 2, 3, 7, None)] == [
        "Unknown", "Down", "Paused", "Joining", "7", None
    ]  # fmt: skip
    assert sim.log() == []  # discovery reads; it calls no method


def test_discover_cluster_on_a_node_without_the_cluster_provider_says_so(sim: SimulatedCluster) -> None:
    sim.inject(node="HVNODE01", method="Enumerate", kind="fault", fault="not_supported")
    with pytest.raises(HvjobError) as caught:
        discover_cluster(HostTarget("seed", sim.url("HVNODE01"), sim.connection_options()))
    assert caught.value.type == "wsman_fault"
    assert "is this a failover cluster node with the cluster WMI provider?" in caught.value.message


def test_ansible_inventory_graph_shows_the_cluster(sim: SimulatedCluster, tmp_path: Path) -> None:
    source = write_source(tmp_path, sim, keyed_groups=[{"key": "hvjob_node_state", "prefix": "node"}])
    env = inventory_env(tmp_path, HVJOB_PASSWORD=CANARY_PASSWORD)
    graph = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(source), "--graph"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert graph.returncode == 0, graph.stderr
    lines = [line.rstrip() for line in graph.stdout.splitlines()]
    start = lines.index("  |--@HVCLU01:")
    assert lines[start + 1 : start + 4] == ["  |  |--HVNODE01", "  |  |--HVNODE02", "  |  |--HVNODE03"]
    assert "  |--@node_Up:" in lines

    listed = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(source), "--list"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert CANARY_PASSWORD not in listed.stdout + listed.stderr
    hostvars = json.loads(listed.stdout, object_hook=trusted)["_meta"]["hostvars"]
    assert set(hostvars) == {"HVNODE01", "HVNODE02", "HVNODE03"}
    for node, variables in hostvars.items():
        assert f"{variables['ansible_host']}:{variables['ansible_port']}" == sim.resolve[node]
        assert variables["hvjob_url"] == sim.url(node) and variables["hvjob_cluster"] == "HVCLU01"


def test_a_vaulted_password_in_the_inventory_file(sim: SimulatedCluster, tmp_path: Path) -> None:
    vault_file = tmp_path / "vault-password"
    vault_file.write_text("vault-secret\n")
    env = inventory_env(tmp_path)
    encrypted = subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt_string", "--vault-password-file", str(vault_file),
         "--name", "password", CANARY_PASSWORD],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    ).stdout  # fmt: skip
    source = write_source(tmp_path, sim)
    source.write_text(source.read_text() + encrypted)
    command = [str(BIN / "ansible-inventory"), "-i", str(source), "--graph", "HVCLU01"]
    unlocked = subprocess.run(
        [*command, "--vault-password-file", str(vault_file)], capture_output=True, text=True, env=env, timeout=120
    )
    assert unlocked.returncode == 0, unlocked.stderr
    assert "|--HVNODE02" in unlocked.stdout
    locked = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert locked.returncode != 0 and "vault" in locked.stderr.lower()
    assert CANARY_PASSWORD not in unlocked.stdout + unlocked.stderr + locked.stdout + locked.stderr


def test_the_hvjob_cli_reads_the_plugin_inventory(sim: SimulatedCluster, tmp_path: Path) -> None:
    """``hvjob --inventory cluster.hvjob.yml``: the CLI's Ansible inventory input runs the plugin,
    and the host variables it sets are where the CLI connects."""
    source = write_source(tmp_path, sim)
    env = inventory_env(tmp_path, HVJOB_PASSWORD=CANARY_PASSWORD)
    done = subprocess.run(
        [str(BIN / "hvjob"), "--inventory", str(source), "--output", "json", "stop", "HVCLU01", "--job", default.RUNNING],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    changed = {r["host"]: r["changed"] for r in report["results"]}
    assert changed == {"HVNODE01": True, "HVNODE02": False, "HVNODE03": False}
    assert [(e["node"], e["method"]) for e in sim.log()] == [("HVNODE01", "RequestStateChange")]
