"""Hosts and connection variables from an Ansible inventory, read by ansible-core's own API.

Optional extra ``hvjob[ansible]``. Precedence: what the user gave (on the command line or in the
environment), then inventory variables, then defaults (docs/cli.md); a value the user typed wins
even when it equals the default. Vaulted values work as in Ansible with ``--vault-password-file``.
"""

from __future__ import annotations

import contextlib
import io
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
    said = io.StringIO()
    try:
        # ansible-core prints its parse warnings with the neighbouring lines of the file, which can
        # hold a plain ansible_password: they are kept from the terminal, and only ansible's first
        # line of an error is shown.
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
            inventory = InventoryManager(loader=loader, sources=[source])
            if not inventory.hosts:
                why = "cannot be parsed" if "parse" in said.getvalue() else "has no hosts"
                raise UsageError(f"inventory {source} {why} (ansible-inventory -i {source} --list shows the details)")
            if limit:
                inventory.subset(limit)
            hosts = inventory.get_hosts(pattern=list(patterns))
            variables = VariableManager(loader=loader, inventory=inventory)
            targets = []
            for host in hosts:
                hostvars = _templated(loader, variables.get_vars(host=host))
                targets.append(_target(host.name, hostvars, cli, explicit))
    except UsageError:
        raise
    except Exception as exc:  # AnsibleError and friends: an unreadable inventory is a usage error
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(
            f"cannot read inventory {source}: {first} (ansible-inventory -i {source} --list shows the details)"
        ) from None
    if not targets:
        raise UsageError(
            f"no inventory host matches {' '.join(patterns)}" + (f" with --limit {limit}" if limit else "")
        )
    return targets


#: The host variables hvjob reads; each is templated as Ansible would (``"{{ vault_winrm_password }}"``).
READ_VARIABLES = (
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_password",
    "ansible_winrm_transport",
    "ansible_winrm_scheme",
    "ansible_winrm_server_cert_validation",
    "ansible_winrm_ca_trust_path",
)


def _templated(loader: Any, hostvars: dict[str, Any]) -> dict[str, Any]:
    from ansible.template import Templar

    templar = Templar(loader=loader, variables=hostvars)
    return {name: templar.template(hostvars[name]) for name in READ_VARIABLES if name in hostvars}


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
