# Copyright: (c) 2026, hvjob maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one place where the modules meet the hvjob library; the protocol itself lives there."""

from __future__ import annotations

import logging
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

HVJOB_IMPORT_ERROR = None
try:
    from hvjob.errors import HvjobError
    from hvjob.jobs import JobClient
    from hvjob.transport import ConnectionOptions, WsmanSession
except ImportError:
    HVJOB_IMPORT_ERROR = traceback.format_exc()


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
        p = self.params
        return ConnectionOptions(
            transport=p["transport"],
            username=p["username"],
            password=p["password"],
            scheme=p["scheme"],
            port=p["port"],
            ca_trust_path=p["ca_trust_path"],
            insecure=not p["validate_certs"],
            message_encryption=p["message_encryption"],
            allow_unencrypted=p["allow_unencrypted"],
            cert_pem=p["cert_pem"],
            cert_key_pem=p["cert_key_pem"],
            spn_hostname=p["spn_hostname"],
            connect_timeout=float(p["connect_timeout"]),
            operation_timeout=float(p["operation_timeout"]),
        )

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
