# Copyright: (c) 2026, hvjob maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""hvjob.hyperv.job, run in the controller's process (plugins/plugin_utils/action.py says why)."""

from __future__ import annotations

from ansible_collections.hvjob.hyperv.plugins.module_utils.hvjob_client import job_argument_spec, job_outcome
from ansible_collections.hvjob.hyperv.plugins.plugin_utils.action import HvjobAction


class ActionModule(HvjobAction):
    def argument_spec(self):
        return job_argument_spec()

    def operate(self, params, client, check_mode):
        return job_outcome(params, client, check_mode)
