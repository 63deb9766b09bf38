# Copyright: (c) 2026, hvjob maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""hvjob.hyperv.job_info, run in the controller's process (plugins/plugin_utils/action.py says why)."""

from __future__ import annotations

from ansible_collections.hvjob.hyperv.plugins.module_utils.hvjob_client import job_info_argument_spec, job_info_outcome
from ansible_collections.hvjob.hyperv.plugins.plugin_utils.action import HvjobAction


class ActionModule(HvjobAction):
    def argument_spec(self):
        return job_info_argument_spec()

    def operate(self, params, client, check_mode):
        return {"changed": False, "jobs": job_info_outcome(params, client)}, None
