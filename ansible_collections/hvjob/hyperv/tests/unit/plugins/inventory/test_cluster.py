# Copyright: (c) 2026, hvjob maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The hvjob.hyperv.cluster inventory plugin against a simulated cluster on loopback (real NTLM over
HTTP with message encryption), through ansible-core's own InventoryManager."""

# ruff: noqa: S105, S106, PT018 (test credentials; compound assertions read as one fact)

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader

from hvjob.testing import SimulatedCluster, free_port

PASSWORD = "Unit-Inventory-Pa55!"


@pytest.fixture
def cluster() -> Iterator[SimulatedCluster]:
    with SimulatedCluster(speed=0, username="alice", password=PASSWORD, name="HVCLU01") as sim:
        yield sim


def requests(sim: SimulatedCluster) -> int:
    return sum(front.stats.requests for front in sim.fronts)


def source(tmp_path: Path, sim: SimulatedCluster | None, name: str = "cluster.hvjob.yml", **config: Any) -> str:
    data: dict[str, Any] = {"plugin": "hvjob.hyperv.cluster", "scheme": "http", "username": "alice"}
    if sim is not None:
        data["seeds"] = [sim.resolve[sim.nodes[0]]]
        data["resolve"] = sim.resolve
    data.update(config)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def load(path: str, *, cache: bool = True) -> InventoryManager:
    """Parse one source as ansible-inventory does; an unparsable source raises instead of warning."""
    plugin = inventory_loader.get("hvjob.hyperv.cluster")
    assert plugin is not None and plugin.verify_file(path)
    manager = InventoryManager(loader=DataLoader(), sources=[])
    plugin.parse(manager._inventory, manager._loader, path, cache=cache)
    if plugin.get_option("cache"):
        plugin.update_cache_if_changed()  # as InventoryManager does after a parse
    manager._inventory.reconcile_inventory()
    return manager


@pytest.fixture(autouse=True)
def _password_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVJOB_PASSWORD", PASSWORD)


def hostvars(manager: InventoryManager, name: str) -> dict[str, Any]:
    return dict(manager.get_host(name).get_vars())


def test_a_group_per_cluster_with_the_connection_variables(tmp_path: Path, cluster: SimulatedCluster) -> None:
    manager = load(source(tmp_path, cluster))
    group = manager.groups["HVCLU01"]
    assert [h.name for h in group.get_hosts()] == ["HVNODE01", "HVNODE02", "HVNODE03"]
    for node in cluster.nodes:
        host, port = cluster.resolve[node].split(":")
        variables = hostvars(manager, node)
        assert variables["ansible_host"] == host and variables["ansible_port"] == int(port)
        assert variables["ansible_winrm_scheme"] == "http" and variables["ansible_winrm_transport"] == "ntlm"
        assert variables["ansible_user"] == "alice"
        assert variables["hvjob_cluster"] == "HVCLU01" and variables["hvjob_node_state"] == "Up"
        assert variables["hvjob_url"] == cluster.url(node)
        assert PASSWORD not in json.dumps(variables, default=str)  # the password never becomes a host variable


def test_compose_groups_and_keyed_groups(tmp_path: Path, cluster: SimulatedCluster) -> None:
    path = source(
        tmp_path,
        cluster,
        compose={"ansible_connection": "'winrm'", "node_number": "inventory_hostname[-2:] | int"},
        groups={"first_node": "node_number == 1"},
        keyed_groups=[{"key": "hvjob_node_state", "prefix": "state"}, {"key": "hvjob_cluster", "prefix": "cluster"}],
    )
    manager = load(path)
    assert hostvars(manager, "HVNODE02")["ansible_connection"] == "winrm"
    assert hostvars(manager, "HVNODE03")["node_number"] == 3
    assert [h.name for h in manager.groups["first_node"].get_hosts()] == ["HVNODE01"]
    assert len(manager.groups["state_Up"].get_hosts()) == 3
    assert len(manager.groups["cluster_HVCLU01"].get_hosts()) == 3


def test_strict_compose_errors_fail_and_lenient_ones_do_not(tmp_path: Path, cluster: SimulatedCluster) -> None:
    lenient = load(source(tmp_path, cluster, compose={"x": "no_such_variable + 1"}))
    assert "x" not in hostvars(lenient, "HVNODE01")
    with pytest.raises(AnsibleError, match="no_such_variable"):
        load(source(tmp_path, cluster, strict=True, compose={"x": "no_such_variable + 1"}))


def test_the_cache_answers_the_second_parse_without_a_request(tmp_path: Path, cluster: SimulatedCluster) -> None:
    cache_dir = tmp_path / "cache"
    path = source(
        tmp_path, cluster, cache=True, cache_plugin="ansible.builtin.jsonfile", cache_connection=str(cache_dir)
    )
    first = load(path, cache=True)
    sent = requests(cluster)
    assert sent > 0 and len(first.groups["HVCLU01"].get_hosts()) == 3
    second = load(path, cache=True)
    assert requests(cluster) == sent  # from the cache
    assert hostvars(second, "HVNODE02") == hostvars(first, "HVNODE02")
    stored = "".join(p.read_text() for p in cache_dir.iterdir())
    assert "HVNODE03" in stored and PASSWORD not in stored
    load(path, cache=False)  # --flush-cache: asks again
    assert requests(cluster) > sent


def test_a_seed_of_a_known_cluster_is_not_asked_again(tmp_path: Path, cluster: SimulatedCluster) -> None:
    path = source(tmp_path, cluster)
    load(path)
    one = requests(cluster)
    data = yaml.safe_load(Path(path).read_text())
    data["seeds"] = [cluster.resolve["HVNODE02"], "HVNODE03", "hvnode01.contoso.test", "HVCLU01"]
    Path(path).write_text(yaml.safe_dump(data))
    manager = load(path)
    assert requests(cluster) == 2 * one  # the first seed only
    assert len(manager.groups["HVCLU01"].get_hosts()) == 3


def test_the_cluster_name_as_seed(tmp_path: Path, cluster: SimulatedCluster) -> None:
    resolve = {**cluster.resolve, "hvclu01": cluster.resolve["HVNODE02"]}
    manager = load(source(tmp_path, cluster, seeds=["HVCLU01"], resolve=resolve))
    assert len(manager.groups["HVCLU01"].get_hosts()) == 3


def test_cluster_domain_and_the_seeds_port_for_unmapped_nodes(tmp_path: Path, cluster: SimulatedCluster) -> None:
    seed = cluster.resolve["HVNODE01"]
    manager = load(source(tmp_path, cluster, resolve={"HVNODE01": seed}, cluster_domain="contoso.test"))
    variables = hostvars(manager, "HVNODE02")
    assert variables["ansible_host"] == "HVNODE02.contoso.test"
    assert variables["ansible_port"] == int(seed.split(":")[1])
    assert variables["hvjob_url"] == f"http://HVNODE02.contoso.test:{seed.split(':')[1]}/wsman"
    assert hostvars(manager, "HVNODE01")["ansible_host"] == "127.0.0.1"


def test_a_failed_seed_whose_cluster_another_seed_found_is_a_warning(
    tmp_path: Path, cluster: SimulatedCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    resolve = {**cluster.resolve, "HVNODE03": dead}
    manager = load(source(tmp_path, cluster, seeds=["HVNODE03", "HVNODE01"], resolve=resolve, connect_timeout=2))
    assert len(manager.groups["HVCLU01"].get_hosts()) == 3
    assert "seed HVNODE03 failed (connection:" in " ".join(capsys.readouterr().err.split())


def test_a_seed_that_fails_alone_is_an_error_naming_it(tmp_path: Path, cluster: SimulatedCluster) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with pytest.raises(AnsibleError, match=f"cluster discovery failed for {dead}: connection:"):
        load(source(tmp_path, None, seeds=[dead], connect_timeout=2))


def test_a_wrong_password_is_the_typed_authentication_error(
    tmp_path: Path, cluster: SimulatedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HVJOB_PASSWORD", "Wrong-" + PASSWORD)
    with pytest.raises(AnsibleError, match="authentication:") as caught:
        load(source(tmp_path, cluster))
    assert PASSWORD not in str(caught.value)


def test_a_node_without_the_cluster_provider_says_so(tmp_path: Path, cluster: SimulatedCluster) -> None:
    cluster.inject(node="HVNODE01", method="Enumerate", kind="fault", fault="not_supported")
    with pytest.raises(AnsibleError, match="is this a failover cluster node"):
        load(source(tmp_path, cluster))


def test_password_from_the_file_and_a_template(
    tmp_path: Path, cluster: SimulatedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HVJOB_PASSWORD")
    monkeypatch.setenv("UNIT_HV_PASSWORD", PASSWORD)
    templated = load(source(tmp_path, cluster, password="{{ lookup('ansible.builtin.env', 'UNIT_HV_PASSWORD') }}"))
    assert len(templated.groups["HVCLU01"].get_hosts()) == 3


def test_only_hvjob_yml_files_are_this_plugins(tmp_path: Path) -> None:
    plugin = inventory_loader.get("hvjob.hyperv.cluster")
    for name, mine in (("cluster.hvjob.yml", True), ("hvjob.yaml", True), ("cluster.yml", False)):
        path = tmp_path / name
        path.write_text("plugin: hvjob.hyperv.cluster\nseeds: [x]\n")
        assert plugin.verify_file(str(path)) is mine


def test_seeds_are_required(tmp_path: Path) -> None:
    path = tmp_path / "cluster.hvjob.yml"
    path.write_text("plugin: hvjob.hyperv.cluster\n")
    with pytest.raises(AnsibleError, match="seeds"):
        load(str(path))
