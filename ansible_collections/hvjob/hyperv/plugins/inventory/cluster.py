# Copyright: (c) 2026, hvjob maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

# ruff: noqa: E402 (Ansible wants DOCUMENTATION and EXAMPLES before the imports)

DOCUMENTATION = r"""
name: cluster
short_description: Hyper-V failover cluster nodes, discovered over WS-Management
version_added: 0.2.0
description:
  - Asks each seed (any node of a failover cluster, or the cluster's own name) for the cluster's
    nodes (C(MSCluster_Node) in C(root/MSCluster)) and name (C(MSCluster_Cluster)), over WS-Management
    through the hvjob library, and puts the nodes in one group per cluster, named as the cluster names itself.
  - A seed that is already a node or the name of a cluster found through an earlier seed is not asked again.
    A seed that cannot be asked is a warning when an earlier or later seed found its cluster, else an error.
  - "Host variables: C(ansible_host) and C(ansible_port) (from O(resolve), O(cluster_domain), or the seed's
    port and scheme), C(ansible_winrm_scheme), C(ansible_winrm_transport), C(ansible_user) when O(username)
    is set, C(ansible_winrm_ca_trust_path) and C(ansible_winrm_server_cert_validation) when set;
    C(hvjob_cluster) (the cluster's name), C(hvjob_node_state) (V(Up), V(Down), V(Paused), V(Joining),
    V(Unknown)) and C(hvjob_url) (the node's WS-Man URL). The password never becomes a host variable."
  - The inventory file's name must end in C(hvjob.yml) or C(hvjob.yaml), for example C(cluster.hvjob.yml).
author:
  - hvjob maintainers (@hvjob)
extends_documentation_fragment:
  - constructed
  - inventory_cache
  - hvjob.hyperv.connection.inventory
options:
  plugin:
    description: The name of this plugin; it makes the file an inventory of this plugin.
    type: str
    required: true
    choices: [hvjob.hyperv.cluster]
  seeds:
    description:
      - Nodes of the clusters (one per cluster is enough; more are fallbacks) or the clusters' own names,
        each as V(name), V(name:port) or a V(https://name:5986/wsman) URL.
    type: list
    elements: str
    required: true
  resolve:
    description:
      - Where a node or seed that DNS does not know listens - a name (case-insensitive) to an address,
        V(host:port) or a URL. A node not listed is reached by its name (with O(cluster_domain)) on the seed's
        scheme, port and path.
    type: dict
    default: {}
  cluster_domain:
    description:
      - A DNS domain appended to node names without one (the cluster reports short names).
    type: str
"""

EXAMPLES = r"""
# cluster.hvjob.yml: ansible-inventory -i cluster.hvjob.yml --graph
plugin: hvjob.hyperv.cluster
seeds:
  - hvclu01.contoso.test        # a cluster name, or any node of it
  - hvnode21.contoso.test       # a node of another cluster
cluster_domain: contoso.test
username: CONTOSO\operator
password: !vault |
  $ANSIBLE_VAULT;1.1;AES256
  ...
ca_trust_path: /etc/pki/contoso-ca.pem
keyed_groups:
  - key: hvjob_node_state
    prefix: node
groups:
  up: hvjob_node_state == 'Up'
compose:
  ansible_connection: "'winrm'"   # for ansible.windows modules on the nodes themselves

# A simulated cluster on loopback (hvjob serve --simulate), its nodes mapped to their ports:
# plugin: hvjob.hyperv.cluster
# seeds: [127.0.0.1:40001]
# scheme: http
# username: alice
# resolve: {HVNODE01: "127.0.0.1:40001", HVNODE02: "127.0.0.1:40002", HVNODE03: "127.0.0.1:40003"}
"""

import logging
from urllib.parse import urlsplit

from ansible.errors import AnsibleParserError
from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.display import Display
from ansible_collections.hvjob.hyperv.plugins.module_utils.hvjob_client import (
    CONNECTION_OPTIONS,
    HVJOB_IMPORT_ERROR,
    connection_options,
)

try:
    from hvjob.errors import HvjobError
    from hvjob.fanout import HostTarget, cluster_targets, discover_cluster, resolve_address
    from hvjob.transport import endpoint_url
except ImportError:
    pass  # HVJOB_IMPORT_ERROR says why


display = Display()


class _WarningsToDisplay(logging.Handler):
    """hvjob logs its warnings (insecure settings); ansible-inventory shows them as warnings."""

    def __init__(self):
        super().__init__(level=logging.WARNING)

    def emit(self, record):
        display.warning(f"hvjob.hyperv.cluster: {record.getMessage()}")


def _short(name):
    return name.split(".", 1)[0].casefold()


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """Nodes of Hyper-V failover clusters, a group per cluster, found over WS-Management."""

    NAME = "hvjob.hyperv.cluster"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("hvjob.yml", "hvjob.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        if HVJOB_IMPORT_ERROR is not None:
            raise AnsibleParserError(missing_required_lib("hvjob") + "\n" + HVJOB_IMPORT_ERROR)
        options = connection_options({name: self._option(name) for name in CONNECTION_OPTIONS})
        resolve = {str(k): str(v) for k, v in (self.get_option("resolve") or {}).items()}
        domain = self.get_option("cluster_domain")

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        clusters = None
        if use_cache:
            try:
                clusters = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if clusters is None:
            handler = _WarningsToDisplay()
            logging.getLogger("hvjob").addHandler(handler)
            try:
                clusters = self._discover(options, resolve, domain)
            finally:
                logging.getLogger("hvjob").removeHandler(handler)
        if update_cache:
            self._cache[cache_key] = clusters
        self._populate(clusters, options, resolve, domain)

    def _option(self, name):
        value = self.get_option(name)
        if isinstance(value, str) and self.templar.is_template(value):
            value = self.templar.template(value)  # for example a lookup of the password
        if name in ("username", "password") and value is not None:
            value = str(value)  # a vaulted value, decrypted
        return value

    # --- discovery: names, states and seeds only, so that the cache holds no secret ----------------

    def _discover(self, options, resolve, domain):
        clusters = []
        failed = []
        for seed in map(str, self.get_option("seeds")):
            if self._known(seed, clusters):
                continue
            target = HostTarget(seed, resolve_address(seed, resolve, domain), options)
            try:
                info = discover_cluster(target)
            except HvjobError as exc:
                failed.append((seed, exc))
                continue
            name = info.name or seed
            nodes = [{"name": n.name, "state": n.state_label} for n in info.nodes]
            merged = next((c for c in clusters if c["name"].casefold() == name.casefold()), None)
            if merged is None:
                clusters.append({"name": name, "seed": seed, "nodes": nodes})
            else:
                seen = {n["name"].casefold() for n in merged["nodes"]}
                merged["nodes"] += [n for n in nodes if n["name"].casefold() not in seen]
        unexplained = []
        for seed, exc in failed:
            text = f"{exc.type}: {exc.message}"
            if self._known(seed, clusters):
                display.warning(f"hvjob.hyperv.cluster: seed {seed} failed ({text}); another seed found its cluster")
            else:
                unexplained.append(f"{seed}: {text}")
        if unexplained:
            raise AnsibleParserError("cluster discovery failed for " + "; ".join(unexplained))
        return clusters

    @staticmethod
    def _known(seed, clusters):
        host = urlsplit(seed).hostname if "://" in seed else seed.rsplit(":", 1)[0] if seed.count(":") == 1 else seed
        short = _short(host or seed)
        if short.isdigit() or ":" in short:
            return False  # an IP address names no node
        for cluster in clusters:
            if _short(cluster["name"]) == short or any(_short(n["name"]) == short for n in cluster["nodes"]):
                return True
        return False

    # --- the inventory ----------------------------------------------------------------------------------

    def _populate(self, clusters, options, resolve, domain):
        strict = self.get_option("strict")
        for cluster in clusters:
            group = self.inventory.add_group(self._sanitize_group_name(cluster["name"]))
            seed = HostTarget(cluster["seed"], resolve_address(cluster["seed"], resolve, domain), options)
            names = [n["name"] for n in cluster["nodes"]]
            try:
                targets = cluster_targets(seed, names, resolve, domain)
                urls = [endpoint_url(t.address, options) for t in targets]
            except HvjobError as exc:
                raise AnsibleParserError(f"{exc.type}: {exc.message}") from None
            for node, url in zip(cluster["nodes"], urls, strict=True):
                host = self.inventory.add_host(node["name"], group=group)
                for key, value in self._host_vars(cluster["name"], node, url, options).items():
                    self.inventory.set_variable(host, key, value)
                hostvars = self.inventory.get_host(host).get_vars()
                try:
                    self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
                    self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
                    self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)
                except Exception as exc:
                    raise AnsibleParserError(f"{host}: {to_native(exc)}") from None

    @staticmethod
    def _host_vars(cluster, node, url, options):
        parts = urlsplit(url)
        at = parts.netloc.lower().rindex(parts.hostname)  # the name as given: urlsplit lowercases it
        variables = {
            "ansible_host": parts.netloc[at : at + len(parts.hostname)],
            "ansible_port": parts.port,
            "ansible_winrm_scheme": parts.scheme,
            "ansible_winrm_transport": options.transport,
            "hvjob_cluster": cluster,
            "hvjob_node_state": node["state"],
            "hvjob_url": url,
        }
        variables = {key: value for key, value in variables.items() if value is not None}
        if parts.path and parts.path != "/wsman":
            variables["ansible_winrm_path"] = parts.path
        if options.username:
            variables["ansible_user"] = options.username
        if options.ca_trust_path:
            variables["ansible_winrm_ca_trust_path"] = options.ca_trust_path
        if options.insecure:
            variables["ansible_winrm_server_cert_validation"] = "ignore"
        return variables
