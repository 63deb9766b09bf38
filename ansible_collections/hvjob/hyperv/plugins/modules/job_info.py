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
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
    support: full
    details: Reads only, in check mode as otherwise.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
options:
  job_id:
    description:
      - Read only this job (its C(InstanceID)). A job that does not exist gives an empty O(ignore:jobs) list.
    type: str
  states:
    description:
      - Only jobs in these states, by name (V(Running), V(Shutting Down), V(Completed with Warnings), ...)
        or number (V(4)). Ignored with O(job_id).
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Find running export jobs on every node
  hvjob.hyperv.job_info:
    hostname: "{{ ansible_host | default(inventory_hostname) }}"
    username: "{{ ansible_user }}"
    password: "{{ ansible_password }}"
    states: [Running]
  delegate_to: localhost
  register: export_jobs

- name: Show their ids
  ansible.builtin.debug:
    msg: "{{ export_jobs.jobs | map(attribute='InstanceID') | list }}"
"""

RETURN = r"""
jobs:
  description: One entry per job, its properties keyed by WMI property name.
  returned: always
  type: list
  elements: dict
  sample: [{"InstanceID": "9C2B5A3E-0D1F-4C8B-A6E2-3F5D7B9A1C40", "JobState": 4, "PercentComplete": 40}]
"""

from ansible_collections.hvjob.hyperv.plugins.module_utils.hvjob_client import HvjobModule

try:
    from hvjob.errors import ResourceNotFound
    from hvjob.jobs import JobState
except ImportError:
    pass  # HvjobModule reports the missing library


def _read(params, client):
    if params["job_id"]:
        try:
            return [client.get_job(params["job_id"]).to_properties()]
        except ResourceNotFound:
            return []
    states = [JobState.parse(text) for text in params["states"] or []]
    return [job.to_properties() for job in client.iter_jobs(states or None)]


def main():
    hv = HvjobModule(
        dict(
            job_id=dict(type="str"),
            states=dict(type="list", elements="str"),
        ),
        supports_check_mode=True,
    )
    jobs = hv.run(lambda client: _read(hv.params, client))  # a bad state name fails as a usage error
    hv.exit(changed=False, jobs=jobs)


if __name__ == "__main__":
    main()
