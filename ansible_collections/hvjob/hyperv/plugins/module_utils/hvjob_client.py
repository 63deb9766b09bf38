# Copyright: (c) 2026, hvjob maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one place where the modules meet the hvjob library; the protocol itself lives there."""

from __future__ import annotations

import logging
import re
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

HVJOB_IMPORT_ERROR = None
try:
    from hvjob.errors import HvjobError, UsageError
    from hvjob.jobs import JobClient, JobFilter
    from hvjob.transport import ConnectionOptions, WsmanSession
except ImportError:
    HVJOB_IMPORT_ERROR = traceback.format_exc()

#: The connection options the modules and the inventory plugin share (doc fragment hvjob.hyperv.connection).
CONNECTION_OPTIONS = (
    "username",
    "password",
    "transport",
    "scheme",
    "port",
    "validate_certs",
    "ca_trust_path",
    "message_encryption",
    "allow_unencrypted",
    "cert_pem",
    "cert_key_pem",
    "spn_hostname",
    "connect_timeout",
    "operation_timeout",
)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def connection_argument_spec():
    """The options of the hvjob.hyperv.connection doc fragment."""
    return dict(
        hostname=dict(type="str", required=True),
        port=dict(type="int"),
        username=dict(type="str", fallback=(env_fallback, ["HVJOB_USERNAME"])),
        password=dict(type="str", no_log=True, fallback=(env_fallback, ["HVJOB_PASSWORD"])),
        transport=dict(type="str", default="ntlm", choices=["ntlm", "kerberos", "credssp", "basic", "certificate"]),
        scheme=dict(type="str", default="https", choices=["https", "http"]),
        validate_certs=dict(type="bool", default=True),
        ca_trust_path=dict(type="path"),
        message_encryption=dict(type="str", default="auto", choices=["auto", "always", "never"]),
        allow_unencrypted=dict(type="bool", default=False),
        cert_pem=dict(type="path"),
        cert_key_pem=dict(type="path", no_log=False),
        spn_hostname=dict(type="str"),
        connect_timeout=dict(type="int", default=10),
        operation_timeout=dict(type="int", default=20),
        namespace=dict(type="str", default="root/HyperVCluster/v2"),
        job_class=dict(type="str", default="Msvm_CollectionReferencePointExportJob"),
    )


def connection_options(params):
    """hvjob ConnectionOptions from the shared options (a module's params or an inventory's options)."""
    return ConnectionOptions(
        transport=params["transport"],
        username=params["username"],
        password=params["password"],
        scheme=params["scheme"],
        port=params["port"],
        ca_trust_path=params["ca_trust_path"],
        insecure=not params["validate_certs"],
        message_encryption=params["message_encryption"],
        allow_unencrypted=params["allow_unencrypted"],
        cert_pem=params["cert_pem"],
        cert_key_pem=params["cert_key_pem"],
        spn_hostname=params["spn_hostname"],
        connect_timeout=float(params["connect_timeout"]),
        operation_timeout=float(params["operation_timeout"]),
    )


def parse_duration(value):
    """Seconds from the CLI's duration syntax (V(90s), V(30m), V(2h), V(1d); a bare number is seconds)."""
    if value is None:
        return None
    match = _DURATION.match(str(value).strip())
    if not match:
        raise UsageError(f"invalid duration {value!r} (like 90s, 30m, 2h, 1d)")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def job_filter(states=None, older_than=None, owner=None, name=None):
    """The library's JobFilter from job_info's options, as the CLI's list --state --older-than --owner --name."""
    return JobFilter.of(states or (), older_than=parse_duration(older_than), owner=owner, name=name)


class _WarningsToModule(logging.Handler):
    """hvjob logs its warnings (insecure settings); Ansible users see them as module warnings."""

    def __init__(self, module):
        super().__init__(level=logging.WARNING)
        self.module = module

    def emit(self, record):
        self.module.warn(record.getMessage())


class HvjobModule:
    """An AnsibleModule with hvjob's connection options, its import guard and its error reporting."""

    def __init__(self, argument_spec, **kwargs):
        spec = connection_argument_spec()
        spec.update(argument_spec)
        self.module = AnsibleModule(argument_spec=spec, **kwargs)
        if HVJOB_IMPORT_ERROR is not None:
            self.module.fail_json(msg=missing_required_lib("hvjob"), exception=HVJOB_IMPORT_ERROR)
        self.params = self.module.params
        self._handler = _WarningsToModule(self.module)
        logging.getLogger("hvjob").addHandler(self._handler)

    def connection_options(self):
        return connection_options(self.params)

    def client(self, session):
        return JobClient(
            session,
            namespace=self.params["namespace"],
            class_name=self.params["job_class"],
            check=self.module.check_mode,
        )

    def run(self, operation):
        """Open a session, run ``operation(client)`` and return its result; typed errors fail the task."""
        error = None
        try:
            with WsmanSession(self.params["hostname"], self.connection_options()) as session:
                return operation(self.client(session))
        except HvjobError as exc:
            error = exc
        # Failing outside the except block: ansible-core 2.19 attaches the active traceback otherwise.
        self.fail(error)
        return None  # not reached: fail() exits

    def fail(self, error, **result):
        """fail_json with the typed error's fields (docs/cli.md), never a traceback or a secret."""
        details = error.to_dict()
        result.setdefault("changed", False)
        self.module.fail_json(msg=f"{details['type']}: {details['message']}", error=details, **result)

    def exit(self, **result):
        logging.getLogger("hvjob").removeHandler(self._handler)
        self.module.exit_json(**result)
