#!/usr/bin/python
# Copyright: (c) 2026, hvjob maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: job
short_description: Stop or kill a Hyper-V cluster job over WS-Management
version_added: 0.1.0
description:
  - Stops a job such as an C(Msvm_CollectionReferencePointExportJob) in C(root\HyperVCluster\v2)
    idempotently (O(state=stopped)), or calls its C(KillJob) method (O(state=killed)).
  - O(state=stopped) reads the job, leaves a finished or vanished job alone, and requests the state
    change with C(RequestStateChange), falling back to the deprecated C(KillJob) where the provider
    does not support it.
  - O(state=killed) reads the job, leaves a finished one alone, and otherwise calls C(KillJob) with
    O(delete_on_kill). Only C(ReturnValue) 0 counts as success.
  - Runs on the controller, with the host's WinRM variables as defaults; see the notes.
author:
  - hvjob maintainers (@hvjob)
extends_documentation_fragment:
  - hvjob.hyperv.connection
  - hvjob.hyperv.attributes
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
    support: full
    details: Reads the job and reports what would be done; sends no method call.
options:
  job_id:
    description:
      - The job's C(InstanceID) (a GUID).
    type: str
    required: true
  state:
    description:
      - V(stopped) requests Kill (or Terminate, see O(mode)) through C(RequestStateChange), with fallback to C(KillJob).
      - V(killed) calls C(KillJob).
    type: str
    choices: [stopped, killed]
    default: stopped
  mode:
    description:
      - For O(state=stopped), the state requested. V(kill) is C(RequestStateChange(5)), V(terminate) is
        C(RequestStateChange(4)), which lets the job clean up first.
    type: str
    choices: [kill, terminate]
    default: kill
  method:
    description:
      - For O(state=stopped), which methods to try. V(auto) is C(RequestStateChange), then C(KillJob)
        in O(mode=kill) when the provider does not support the first.
    type: str
    choices: [auto, request_state_change, kill_job, kill_job_first]
    default: auto
  delete_on_kill:
    description:
      - For O(state=killed), the C(DeleteOnKill) argument of C(KillJob), which deletes the job once killed.
      - A deleted job is gone on the next run, so pair it with O(missing_ok=true) for idempotence.
    type: bool
    default: false
  wait:
    description:
      - For O(state=stopped), wait until the job has reached a final state.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait with O(wait=true).
    type: int
    default: 300
  force:
    description:
      - Send the request even when the job says it is not cancellable (C(Cancellable=false)).
    type: bool
    default: false
  missing_ok:
    description:
      - Whether a job that does not exist (any more) is fine (unchanged) rather than a failure.
      - Defaults to V(true) for O(state=stopped) and V(false) for O(state=killed).
    type: bool
"""

EXAMPLES = r"""
# The node, the account and the password come from the host's variables (ansible_host, ansible_user,
# ansible_password, ansible_winrm_*), for example from the hvjob.hyperv.cluster inventory plugin.
- name: Stop an export job on a node
  hvjob.hyperv.job:
    job_id: 9C2B5A3E-0D1F-4C8B-A6E2-3F5D7B9A1C40
    state: stopped
    wait: true

- name: Kill it with the deprecated KillJob and delete it, naming the node and the account
  hvjob.hyperv.job:
    hostname: hvnode01.contoso.test
    username: CONTOSO\operator
    password: "{{ vault_hyperv_password }}"
    ca_trust_path: /etc/pki/corp-ca.pem
    job_id: 9C2B5A3E-0D1F-4C8B-A6E2-3F5D7B9A1C40
    state: killed
    delete_on_kill: true
    missing_ok: true
"""

RETURN = r"""
job_id:
  description: The job's InstanceID.
  returned: always
  type: str
  sample: 9C2B5A3E-0D1F-4C8B-A6E2-3F5D7B9A1C40
method:
  description: The WMI method whose call decided the outcome, or C(Get) when only the job was read.
  returned: always
  type: str
  sample: RequestStateChange
return_value:
  description: The method's C(ReturnValue), or null when no method was called.
  returned: always
  type: int
  sample: 0
return_name:
  description:
    - The name of RV(return_value). For C(KillJob) exactly the documented words
      (C(Success), C(Not Supported), C(Unknown), C(Timeout), C(Failed), C(Access Denied), C(Not Found),
      C(DMTF Reserved), C(Vendor Specific)).
  returned: always
  type: str
  sample: Completed
job_state:
  description: The job's state after the task (C(Running), C(Killed), ...), or null when it is gone.
  returned: always
  type: str
  sample: Killed
found:
  description:
    - Whether the job existed on this node; null when nothing could be read (for example the node was unreachable).
  returned: always
  type: bool
  sample: true
job:
  description: The job's properties keyed by WMI property name, read after the task; empty when it is gone.
  returned: always
  type: dict
  sample: {"InstanceID": "9C2B5A3E-0D1F-4C8B-A6E2-3F5D7B9A1C40", "JobState": 9, "Cancellable": true}
notes:
  description: What happened, in words (fallbacks, already finished, gone).
  returned: always
  type: list
  elements: str
error:
  description:
    - On failure, the typed error (C(type), C(message), C(wsman_code), C(wmi_code), C(fault_subcode), C(machine), ...).
  returned: failure
  type: dict
"""

from ansible_collections.hvjob.hyperv.plugins.module_utils.hvjob_client import (
    HvjobModule,
    job_argument_spec,
    job_outcome,
)


def main():
    hv = HvjobModule(job_argument_spec(), supports_check_mode=True)
    out, error = hv.run(lambda client: job_outcome(hv.params, client, hv.module.check_mode))
    if error is not None:
        hv.fail(error, **out)
    hv.exit(**out)


if __name__ == "__main__":
    main()
