"""Hosts and connection variables from an Ansible inventory, read by ansible-core's own API.

Optional extra ``hvjob[ansible]``. Precedence: what the user gave (on the command line or in the
environment), then inventory variables, then defaults (docs/cli.md); a value the user typed wins
even when it equals the default. Vaulted values work as in Ansible with ``--vault-password-file``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hvjob.errors import UsageError
from hvjob.fanout import HostTarget
from hvjob.transport import ConnectionOptions


def load_inventory(
    source: str,
    patterns: tuple[str, ...],
    limit: str | None,
    cli: ConnectionOptions,
    vault_password_file: str | None,
    *,
    explicit: frozenset[str] = frozenset(),
) -> list[HostTarget]:
    """Targets for the inventory hosts matching ``patterns``. ``explicit``: the CLI options the
    user gave (``scheme``, ``port``, ...), which win over the inventory."""
    try:
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.manager import VariableManager
    except ImportError as exc:
        raise UsageError("--inventory needs ansible-core: pip install 'hvjob[ansible]'") from exc
    _load_collections()
    loader = DataLoader()
    if vault_password_file:
        try:
            from ansible.cli import CLI

            secrets = CLI.setup_vault_secrets(loader, vault_ids=[], vault_password_files=[vault_password_file])
            loader.set_vault_secrets(secrets)
        except Exception as exc:
            raise UsageError(f"cannot read vault password file {vault_password_file}: {exc}") from exc
    try:
        inventory = InventoryManager(loader=loader, sources=[source])
        if not inventory.hosts and not inventory.groups.get("all", None):
            raise UsageError(f"inventory {source} is empty or unreadable")
        if limit:
            inventory.subset(limit)
        hosts = inventory.get_hosts(pattern=list(patterns))
        variables = VariableManager(loader=loader, inventory=inventory)
        targets = []
        for host in hosts:
            hostvars = variables.get_vars(host=host)
            targets.append(_target(host.name, hostvars, cli, explicit))
    except UsageError:
        raise
    except Exception as exc:  # AnsibleError and friends: an unreadable inventory is a usage error
        raise UsageError(f"cannot read inventory {source}: {exc}") from exc
    if not targets:
        raise UsageError(
            f"no inventory host matches {' '.join(patterns)}" + (f" with --limit {limit}" if limit else "")
        )
    return targets


def _load_collections() -> None:
    """Ansible's collection loader, as its own commands set it up, so that an inventory plugin named
    by collection (``plugin: hvjob.hyperv.cluster``, ``amazon.aws.aws_ec2``) can load. Once per process."""
    from ansible.plugins.loader import init_plugin_loader
    from ansible.utils.collection_loader import AnsibleCollectionConfig

    if AnsibleCollectionConfig.collection_finder is None:
        init_plugin_loader()


def _target(name: str, hostvars: dict[str, Any], cli: ConnectionOptions, explicit: frozenset[str]) -> HostTarget:
    def pick(option: str, cli_value: Any, var: str, convert: Any = None) -> Any:
        if option in explicit:
            return cli_value
        if var in hostvars and hostvars[var] is not None:
            return convert(hostvars[var]) if convert else hostvars[var]
        return cli_value  # the default

    validation = str(hostvars.get("ansible_winrm_server_cert_validation", "validate")).lower()
    password = cli.password if cli.password is not None else hostvars.get("ansible_password")
    options = replace(
        cli,
        username=pick("username", cli.username, "ansible_user"),
        password=None if password is None else str(password),
        transport=pick("transport", cli.transport, "ansible_winrm_transport"),
        scheme=pick("scheme", cli.scheme, "ansible_winrm_scheme"),
        port=pick("port", cli.port, "ansible_port", int),
        ca_trust_path=pick("ca_trust", cli.ca_trust_path, "ansible_winrm_ca_trust_path"),
        insecure=cli.insecure or ("insecure" not in explicit and validation == "ignore"),
    )
    address = str(hostvars.get("ansible_host") or name)
    return HostTarget(name, address, options)
