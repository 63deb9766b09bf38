"""The pytest plugin (entry point ``pytest11``): a user's test suite gets a simulated cluster in a few lines."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

USER_TESTS = """
import pytest
from hvjob.jobs import JobClient
from hvjob.transport import WsmanSession
from hvjob.testing.sim import default


def test_my_automation_stops_the_export(hvjob_cluster):
    with WsmanSession(hvjob_cluster.url("HVNODE01"), hvjob_cluster.connection_options()) as session:
        assert JobClient(session).stop(default.RUNNING).changed
    assert hvjob_cluster.job(default.RUNNING)["state"] == "Killed"
    assert [entry["method"] for entry in hvjob_cluster.log()] == ["RequestStateChange"]


@pytest.mark.hvjob_cluster(nodes=2, profile={"killjob": "returns-1"})
def test_the_marker_configures_the_cluster(hvjob_cluster):
    assert hvjob_cluster.nodes == ["HVNODE01", "HVNODE02"]
    assert hvjob_cluster.profile.killjob == "returns-1"
    assert hvjob_cluster.clock.speed == 0


def test_the_factory_starts_more(hvjob_cluster_factory):
    first, second = hvjob_cluster_factory(nodes=1), hvjob_cluster_factory(nodes=1, speed=1.0)
    assert first.url() != second.url() and second.clock.speed == 1.0
"""


def _plugin_args() -> list[str]:
    registered = any(e.name == "hvjob" for e in entry_points(group="pytest11"))
    return [] if registered else ["-p", "hvjob.testing.pytest_plugin"]  # an install without the entry point


def test_the_hvjob_cluster_fixture_in_a_users_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("--strict-markers", "-p", "no:cacheprovider", *_plugin_args())
    result.assert_outcomes(passed=3)


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers", *_plugin_args())
    result.stdout.fnmatch_lines(["*hvjob_cluster(cluster=None, **options)*"])


def test_the_entry_point_names_the_plugin_module() -> None:
    found = [e for e in entry_points(group="pytest11") if e.name == "hvjob"]
    if not found:
        pytest.skip("hvjob is installed without its entry points (reinstall with pip install -e .)")
    assert found[0].value == "hvjob.testing.pytest_plugin"
