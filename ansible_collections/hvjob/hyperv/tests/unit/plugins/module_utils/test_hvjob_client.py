# Copyright: (c) 2026, hvjob maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""module_utils/hvjob_client: the options the modules and the inventory share, and job_info's filter."""

# ruff: noqa: PT018 (test credentials; compound assertions read as one fact)

from __future__ import annotations

import datetime as dt

import pytest
from ansible_collections.hvjob.hyperv.plugins.module_utils.hvjob_client import (
    CONNECTION_OPTIONS,
    connection_argument_spec,
    connection_options,
    job_filter,
    parse_duration,
)

from hvjob.errors import UsageError
from hvjob.jobs import JobState


def _defaults() -> dict[str, object]:
    spec = connection_argument_spec()
    return {name: spec[name].get("default") for name in CONNECTION_OPTIONS}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1d", 86400.0), ("45", 45.0), (" 1.5h ", 5400.0), (120, 120.0)],
)
def test_durations_are_the_cli_syntax(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2 hours", "-5m", "h", "1w", ""])
def test_a_bad_duration_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        parse_duration(text)


def test_no_duration_is_no_condition() -> None:
    assert parse_duration(None) is None
    assert job_filter().older_than is None


def test_job_filter_takes_states_by_name_or_number_and_every_condition() -> None:
    selection = job_filter(["Running", "6", "completed with warnings"], "2h", "CONTOSO\\backup", "*VMGroup1*")
    assert selection.states == (JobState.RUNNING, JobState.SHUTTING_DOWN, JobState.COMPLETED_WITH_WARNINGS)
    assert selection.older_than == dt.timedelta(hours=2)
    assert (selection.owner, selection.name) == ("CONTOSO\\backup", "*VMGroup1*")


def test_a_bad_state_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="Sleeping"):
        job_filter(["Sleeping"])


def test_every_shared_option_is_in_the_argument_spec_and_the_password_is_no_log() -> None:
    spec = connection_argument_spec()
    assert set(CONNECTION_OPTIONS) <= set(spec)
    assert spec["password"]["no_log"] is True
    assert spec["cert_key_pem"]["no_log"] is False  # a path, not a secret


def test_connection_options_keep_the_secure_defaults_and_map_validate_certs() -> None:
    params = {**_defaults(), "username": "alice", "password": "pw"}
    options = connection_options(params)
    assert (options.scheme, options.insecure, options.transport, options.allow_unencrypted) == (
        "https",
        False,
        "ntlm",
        False,
    )
    assert (options.connect_timeout, options.operation_timeout) == (10.0, 20.0)
    insecure = connection_options({**params, "validate_certs": False, "scheme": "http", "port": 5999})
    assert insecure.insecure is True and insecure.scheme == "http" and insecure.port == 5999
    assert "pw" not in repr(options)
