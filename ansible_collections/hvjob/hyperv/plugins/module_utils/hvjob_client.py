# Copyright: (c) 2026, hvjob maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one place where the collection meets the hvjob library; the protocol itself lives there.

The modules' argument specs and what they do are here, shared by the two ways they run: as action
plugins in the controller's own process (the usual way, plugins/action/), and as modules (when
run without their action plugins, for example by ansible-test).
"""

from __future__ import annotations

import logging
import re
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

HVJOB_IMPORT_ERROR = None
try:
    from hvjob.errors import HvjobError, ResourceNotFound, UsageError
    from hvjob.jobs import JobClient, JobFilter, state_label
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
        hostname=dict(type="str"),
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


def job_argument_spec():
    """hvjob.hyperv.job's options, the connection's included."""
    spec = connection_argument_spec()
    spec.update(
        job_id=dict(type="str", required=True),
        state=dict(type="str", default="stopped", choices=["stopped", "killed"]),
        mode=dict(type="str", default="kill", choices=["kill", "terminate"]),
        method=dict(type="str", default="auto", choices=["auto", "request_state_change", "kill_job", "kill_job_first"]),
        delete_on_kill=dict(type="bool", default=False),
        wait=dict(type="bool", default=False),
        timeout=dict(type="int", default=300),
        force=dict(type="bool", default=False),
        missing_ok=dict(type="bool"),
    )
    return spec


def job_info_argument_spec():
    """hvjob.hyperv.job_info's options, the connection's included."""
    spec = connection_argument_spec()
    spec.update(
        job_id=dict(type="str"),
        states=dict(type="list", elements="str"),
        older_than=dict(type="str"),
        owner=dict(type="str"),
        name=dict(type="str"),
    )
    return spec


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
    """Seconds from the CLI's duration syntax (90s, 30m, 2h, 1d; a bare number is seconds)."""
    if value is None:
        return None
    match = _DURATION.match(str(value).strip())
    if not match:
        raise UsageError(f"invalid duration {value!r} (like 90s, 30m, 2h, 1d)")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def job_filter(states=None, older_than=None, owner=None, name=None):
    """The library's JobFilter from job_info's options, as the CLI's list --state --older-than --owner --name."""
    return JobFilter.of(states or (), older_than=parse_duration(older_than), owner=owner, name=name)


def run_on_node(params, check_mode, operation):
    """Open a session to ``params['hostname']``, run ``operation(client)``; hvjob errors propagate."""
    if not params.get("hostname"):
        raise UsageError("hostname is required (the action plugin defaults it to ansible_host or inventory_hostname)")
    if params["transport"] in ("ntlm", "credssp", "basic"):  # what the library would refuse, in Ansible's words
        if not params.get("username"):
            raise UsageError("no user name: set ansible_user (or ansible-playbook -u, or HVJOB_USERNAME)")
        if params.get("password") is None:
            raise UsageError(
                f"no password for {params['username']}: set ansible_password "
                "(or ansible-playbook --ask-pass, or HVJOB_PASSWORD)"
            )
    with WsmanSession(params["hostname"], connection_options(params)) as session:
        client = JobClient(session, namespace=params["namespace"], class_name=params["job_class"], check=check_mode)
        return operation(client)


def error_result(error, **result):
    """A failed task's result: the typed error's fields (docs/cli.md), never a traceback or a secret."""
    details = error.to_dict()
    result.setdefault("changed", False)
    result.update(failed=True, msg=f"{details['type']}: {details['message']}", error=details)
    return result


# --- what the modules do --------------------------------------------------------------------------


def job_outcome(params, client, check_mode):
    """hvjob.hyperv.job on one node: its result fields, and the error that fails the task (or None)."""
    if params["state"] == "killed":
        missing_ok = False if params["missing_ok"] is None else params["missing_ok"]
        result = client.kill(
            params["job_id"], delete_on_kill=params["delete_on_kill"], missing_ok=missing_ok, skip_terminal=True
        )
    else:
        missing_ok = True if params["missing_ok"] is None else params["missing_ok"]
        result = client.stop(
            params["job_id"],
            mode=params["mode"],
            method=params["method"].replace("_", "-"),
            wait=params["wait"],
            timeout=float(params["timeout"]),
            force=params["force"],
            missing_ok=missing_ok,
        )
    job = {} if result.gone else dict(result.properties or {})
    if result.changed and not check_mode and result.error is None:
        try:  # the state after the call, not the one read before it
            job = client.get_job(params["job_id"]).to_properties()
        except ResourceNotFound:
            job = {}  # deleted by DeleteOnKill, or gone meanwhile
    data = result.to_dict()
    out = dict(
        # Unknown (a call whose answer was lost, the job finished since) is reported as changed;
        # in check mode, Ansible's changed is what a real run would do (hvjob's would_change).
        changed=data["changed"] is not False or bool(data.get("would_change")),
        job_id=params["job_id"],
        method=data["method"],
        return_value=data["return_value"],
        return_name=data["return_name"],
        job_state=state_label(job.get("JobState")) if job else data["job_state"],
        found=result.found,
        job=job,
        notes=data.get("notes", []),
    )
    return out, result.error


def job_info_outcome(params, client):
    """hvjob.hyperv.job_info on one node: the matching jobs' typed properties."""
    selection = job_filter(params["states"], params["older_than"], params["owner"], params["name"])
    if params["job_id"]:
        try:
            job = client.get_job(params["job_id"])
        except ResourceNotFound:
            return []
        return [job.to_properties()] if selection.matches(job) else []
    return client.list(where=selection).raise_for_error().jobs or []


# --- running as a module ---------------------------------------------------------------------------


class WarningsTo(logging.Handler):
    """hvjob logs its warnings (insecure settings); Ansible users see them as task warnings."""

    def __init__(self, warn):
        super().__init__(level=logging.WARNING)
        self.warn = warn

    def emit(self, record):
        self.warn(record.getMessage())


class HvjobModule:
    """An AnsibleModule with hvjob's options, its import guard and its error reporting."""

    def __init__(self, argument_spec, **kwargs):
        self.module = AnsibleModule(argument_spec=argument_spec, **kwargs)
        if HVJOB_IMPORT_ERROR is not None:
            self.module.fail_json(msg=missing_required_lib("hvjob"), exception=HVJOB_IMPORT_ERROR)
        self.params = self.module.params
        self._handler = WarningsTo(self.module.warn)
        logging.getLogger("hvjob").addHandler(self._handler)

    def run(self, operation):
        """Run ``operation(client)`` on the node and return its result; typed errors fail the task."""
        error = None
        try:
            return run_on_node(self.params, self.module.check_mode, operation)
        except HvjobError as exc:
            error = exc
        # Failing outside the except block: ansible-core 2.19 attaches the active traceback otherwise.
        self.fail(error)
        return None  # not reached: fail() exits

    def fail(self, error, **result):
        result = error_result(error, **result)
        del result["failed"]
        self.module.fail_json(**result)

    def exit(self, **result):
        logging.getLogger("hvjob").removeHandler(self._handler)
        self.module.exit_json(**result)
