"""Hosts and connection variables from an Ansible inventory, read by ansible-core's own API.

Optional extra ``hvjob[ansible]``. Precedence: command-line options, then inventory variables,
then defaults (docs/cli.md). Vaulted values work as in Ansible with ``--vault-password-file``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hvjob.errors import UsageError
from hvjob.fanout import HostTarget
from hvjob.transport import ConnectionOptions

_DEFAULTS = ConnectionOptions()


def load_inventory(
    source: str, patterns: tuple[str, ...], limit: str | None, cli: ConnectionOptions, vault_password_file: str | None
) -> list[HostTarget]:
    try:
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.manager import VariableManager
    except ImportError as exc:
        raise UsageError("--inventory needs ansible-core: pip install 'hvjob[ansible]'") from exc
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
            targets.append(_target(host.name, hostvars, cli))
    except UsageError:
        raise
    except Exception as exc:  # AnsibleError and friends: an unreadable inventory is a usage error
        raise UsageError(f"cannot read inventory {source}: {exc}") from exc
    if not targets:
        raise UsageError(
            f"no inventory host matches {' '.join(patterns)}" + (f" with --limit {limit}" if limit else "")
        )
    return targets


def _target(name: str, hostvars: dict[str, Any], cli: ConnectionOptions) -> HostTarget:
    def pick(cli_value: Any, default: Any, var: str) -> Any:
        # The command line wins where it differs from the default; then the inventory; then the default.
        if cli_value != default:
            return cli_value
        return hostvars.get(var, default)

    validation = str(hostvars.get("ansible_winrm_server_cert_validation", "validate")).lower()
    password = cli.password if cli.password is not None else hostvars.get("ansible_password")
    options = replace(
        cli,
        username=cli.username or hostvars.get("ansible_user"),
        password=None if password is None else str(password),
        transport=pick(cli.transport, _DEFAULTS.transport, "ansible_winrm_transport"),
        scheme=pick(cli.scheme, _DEFAULTS.scheme, "ansible_winrm_scheme"),
        port=cli.port if cli.port is not None else _int(hostvars.get("ansible_port")),
        ca_trust_path=cli.ca_trust_path or hostvars.get("ansible_winrm_ca_trust_path"),
        insecure=cli.insecure or validation == "ignore",
    )
    address = str(hostvars.get("ansible_host") or name)
    return HostTarget(name, address, options)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
