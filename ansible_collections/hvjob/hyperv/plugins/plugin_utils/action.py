# Copyright: (c) 2026, hvjob maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The modules as action plugins: their work done in the controller's own process.

The modules talk WS-Management from the controller, never from the managed host. As a module each
task costs a Python process that imports hvjob again (about a second of CPU per host); here it is
a function call in the worker Ansible forks anyway, with hvjob imported once, so a play over
hundreds of nodes is limited by the network rather than by the controller's CPU (docs/ansible.md).
The options not given default to the host's usual WinRM variables (``ansible_host``, ``ansible_user``,
``ansible_password``, ...), then to ``-u`` and ``--ask-pass`` (the play context: AWX's machine
credentials), then to HVJOB_USERNAME and HVJOB_PASSWORD.
"""

from __future__ import annotations

import contextlib
import logging

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase
from ansible_collections.hvjob.hyperv.plugins.module_utils.hvjob_client import (
    HVJOB_IMPORT_ERROR,
    WarningsTo,
    error_result,
    run_on_node,
)

with contextlib.suppress(ImportError):  # HVJOB_IMPORT_ERROR says why
    from hvjob.errors import HvjobError

#: Options that default to a host variable (the names of the ansible.builtin winrm connection's).
HOST_VARIABLES = {
    "hostname": "ansible_host",
    "port": "ansible_port",
    "username": "ansible_user",
    "password": "ansible_password",
    "transport": "ansible_winrm_transport",
    "scheme": "ansible_winrm_scheme",
    "ca_trust_path": "ansible_winrm_ca_trust_path",
    "message_encryption": "ansible_winrm_message_encryption",
    "cert_pem": "ansible_winrm_cert_pem",
    "cert_key_pem": "ansible_winrm_cert_key_pem",
}


class HvjobAction(ActionBase):
    """Validate the task's arguments like AnsibleModule, run the module's work here, report like it."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def argument_spec(self):
        raise NotImplementedError

    def operate(self, params, client, check_mode):
        """The module's work on one node: ``(result fields, error or None)``."""
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # nothing is transferred
        if HVJOB_IMPORT_ERROR is not None:
            result.update(failed=True, msg=missing_required_lib("hvjob"), exception=HVJOB_IMPORT_ERROR)
            return result
        args = self._with_host_variables(dict(self._task.args), task_vars or {})
        validation = ArgumentSpecValidator(self.argument_spec()).validate(args)
        no_log_values = validation._no_log_values
        if validation.error_messages:
            result.update(failed=True, msg=", ".join(validation.error_messages))
            return remove_values(result, no_log_values)
        params = validation.validated_parameters
        check_mode = bool(self._task.check_mode)
        warnings = []
        handler = WarningsTo(warnings.append)
        logging.getLogger("hvjob").addHandler(handler)
        error = None
        try:
            out, error = run_on_node(params, check_mode, lambda client: self.operate(params, client, check_mode))
        except HvjobError as exc:
            out, error = {}, exc
        finally:
            logging.getLogger("hvjob").removeHandler(handler)
        result.update(error_result(error, **out) if error is not None else out)
        result["invocation"] = {"module_args": params}
        if warnings:
            result["warnings"] = warnings
        return remove_values(result, no_log_values)  # as AnsibleModule does with its output

    def _with_host_variables(self, args, task_vars):
        """Fill options the task does not give from the host's WinRM variables (templated)."""
        for option, variable in HOST_VARIABLES.items():
            if args.get(option) is None and task_vars.get(variable) is not None:
                args[option] = self._variable(task_vars[variable])
        if args.get("hostname") is None:
            args["hostname"] = task_vars.get("inventory_hostname")
        # -u and --ask-pass (and AWX's machine credentials, which use them) reach the play context only.
        if args.get("username") is None and self._play_context.remote_user:
            args["username"] = self._play_context.remote_user
        if args.get("password") is None and self._play_context.password:
            args["password"] = self._play_context.password
        validation = task_vars.get("ansible_winrm_server_cert_validation")
        if args.get("validate_certs") is None and validation is not None:
            args["validate_certs"] = str(self._variable(validation)).lower() != "ignore"
        transport = args.get("transport")
        if isinstance(transport, list):  # the winrm connection takes a list of transports
            args["transport"] = transport[0] if transport else None
        elif isinstance(transport, str) and "," in transport:
            args["transport"] = transport.split(",", 1)[0].strip()
        return args

    def _variable(self, value):
        value = self._templar.template(value)
        return str(value) if isinstance(value, str) else value  # a vaulted string, decrypted
