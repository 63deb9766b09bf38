# Copyright: (c) 2026, hvjob maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """The attributes every module of hvjob.hyperv shares (each module documents its check mode)."""

    DOCUMENTATION = r"""
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the
      controller.
    support: full
    details: All of it runs on the controller, in its own process; the managed host needs no Python.
  action_group:
    description: Use C(group/hvjob.hyperv.hyperv) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - hvjob.hyperv.hyperv
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
"""
