#!/usr/bin/python
# Copyright: (c) 2026, hvjob maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: job_info
short_description: List Hyper-V cluster jobs, or show one, over WS-Management
version_added: 0.1.0
description:
  - Lists the jobs of a class such as C(Msvm_CollectionReferencePointExportJob) in C(root\HyperVCluster\v2),
    optionally only those in given states, or reads one job by O(job_id).
  - Never changes anything.
author:
  - hvjob maintainers (@hvjob)
extends_documentation_fragment:
  - hvjob.hyperv.connection
  - hvjob.hyperv.attributes
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
    support: full
    details: Reads only, in check mode as otherwise.
options:
  job_id:
    description:
      - Read only this job (its C(InstanceID)). A job that does not exist, or does not match the other
        options, gives an empty RV(jobs) list.
    type: str
  states:
    description:
      - Only jobs in these states, by name (V(Running), V(Shutting Down), V(Completed with Warnings), ...)
        or number (V(4)), as C(hvjob list --state). The node filters them (WQL).
    type: list
    elements: str
  older_than:
    description:
      - Only jobs started at least this long ago, as C(hvjob list --older-than) - V(90s), V(30m), V(2h), V(1d),
        or a number of seconds.
      - The age is the job's C(ElapsedTime) when it has one (the node's own count, immune to clock skew),
        else the time since its C(StartTime). A job with neither does not match.
    type: str
  owner:
    description:
      - Only jobs whose C(Owner) is this account, case-insensitively (as C(hvjob list --owner)).
    type: str
  name:
    description:
      - Only jobs where a shell glob (V(*VMGroup1*)) matches C(Name), C(ElementName), C(CollectionId),
        C(ReferencePointGroupId) or C(ExportDirectory), case-insensitively (as C(hvjob list --name)).
    type: str
notes:
  - Every option given must hold. The values in RV(jobs) are typed (C(JobState) is an integer,
    C(Cancellable) a boolean), so C(selectattr('JobState', 'eq', 4)) works without casts.
"""

EXAMPLES = r"""
- name: Find running export jobs on every node (where and as whom from the host's variables)
  hvjob.hyperv.job_info:
    states: [Running]
  register: export_jobs

- name: Show their ids
  ansible.builtin.debug:
    msg: "{{ export_jobs.jobs | map(attribute='InstanceID') | list }}"

- name: Exports of one VM group that have run for more than two hours
  hvjob.hyperv.job_info:
    hostname: hvnode01.contoso.test
    username: CONTOSO\operator
    password: "{{ vault_hyperv_password }}"
    states: [Running]
    older_than: 2h
    name: "*VMGroup1*"
  register: stuck

- name: Typed values need no casts
  ansible.builtin.debug:
    msg: "{{ stuck.jobs | selectattr('JobState', 'eq', 4) | selectattr('PercentComplete', 'lt', 50) | length }}"
"""

RETURN = r"""
jobs:
  description:
    - One entry per job that matches, its properties keyed by WMI property name and typed as the
      class declares them - integers, booleans, datetimes as ISO 8601 text, intervals in seconds.
  returned: always
  type: list
  elements: dict
  sample: [{"InstanceID": "9C2B5A3E-0D1F-4C8B-A6E2-3F5D7B9A1C40", "JobState": 4, "PercentComplete": 40}]
"""

from ansible_collections.hvjob.hyperv.plugins.module_utils.hvjob_client import (
    HvjobModule,
    job_info_argument_spec,
    job_info_outcome,
)


def main():
    hv = HvjobModule(job_info_argument_spec(), supports_check_mode=True)
    jobs = hv.run(lambda client: job_info_outcome(hv.params, client))  # a bad state or duration: a usage error
    hv.exit(changed=False, jobs=jobs)


if __name__ == "__main__":
    main()
