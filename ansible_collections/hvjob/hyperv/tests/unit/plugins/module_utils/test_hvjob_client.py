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
    error_result,
    job_argument_spec,
    job_filter,
    job_info_argument_spec,
    parse_duration,
    run_on_node,
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


def test_without_a_hostname_nothing_is_sent_and_the_error_says_where_it_comes_from() -> None:
    params = {**_defaults(), "hostname": None, "namespace": "root/HyperVCluster/v2", "job_class": "X"}
    with pytest.raises(UsageError, match="hostname is required"):
        run_on_node(params, False, lambda client: pytest.fail("no client without a hostname"))


@pytest.mark.parametrize(
    ("account", "says"),
    [
        ({"username": None, "password": None}, "no user name: set ansible_user"),
        ({"username": "alice", "password": None}, "no password for alice: set ansible_password"),
    ],
)
def test_missing_credentials_are_named_as_ansible_names_them(account: dict[str, object], says: str) -> None:
    params = {**_defaults(), **account, "hostname": "node1", "namespace": "root/HyperVCluster/v2", "job_class": "X"}
    with pytest.raises(UsageError, match=says):
        run_on_node(params, False, lambda client: pytest.fail("no client without credentials"))


def test_each_module_spec_has_the_connection_options_and_its_own() -> None:
    connection = set(connection_argument_spec())
    assert connection <= set(job_argument_spec()) and connection <= set(job_info_argument_spec())
    assert job_argument_spec()["job_id"]["required"] is True
    assert set(job_info_argument_spec()) - connection == {"job_id", "states", "older_than", "owner", "name"}
    assert connection_argument_spec()["hostname"].get("required") is not True  # the action plugin defaults it


def test_error_result_is_the_typed_error_and_keeps_the_fields_given() -> None:
    result = error_result(UsageError("bad value"), found=None)
    assert result["failed"] is True and result["changed"] is False and result["found"] is None
    assert result["msg"] == "usage: bad value" and result["error"]["type"] == "usage"
