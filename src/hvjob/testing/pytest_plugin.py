"""The hvjob pytest plugin (entry point ``pytest11``: ``hvjob``): a simulated cluster per test.

::

    def test_my_playbook_stops_the_export(hvjob_cluster):
        ...                                       # run your automation against hvjob_cluster.urls
        assert hvjob_cluster.job(RUNNING)["state"] == "Killed"

    @pytest.mark.hvjob_cluster(nodes=2, profile={"killjob": "returns-1"}, speed=1.0)
    def test_with_options(hvjob_cluster): ...

``hvjob_cluster`` yields a started :class:`~hvjob.testing.SimulatedCluster` (the default cluster
unless the marker says otherwise; the marker's arguments are SimulatedCluster's). Its clock stands
still (speed 0) unless the marker gives a speed: advance it with ``hvjob_cluster.advance(seconds)``.
``hvjob_cluster_factory(**options)`` starts further clusters, all stopped when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hvjob.testing.sim import SimulatedCluster


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "hvjob_cluster(cluster=None, **options): the SimulatedCluster options of the hvjob_cluster fixture",
    )


@pytest.fixture
def hvjob_cluster_factory() -> Iterator[Callable[..., SimulatedCluster]]:
    """Start simulated clusters (SimulatedCluster's arguments; speed 0 by default), stopped at teardown."""
    from hvjob.testing.sim import SimulatedCluster

    started: list[SimulatedCluster] = []

    def start(*args: Any, **options: Any) -> SimulatedCluster:
        options.setdefault("speed", 0.0)
        cluster = SimulatedCluster(*args, **options).start()
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()


@pytest.fixture
def hvjob_cluster(
    request: pytest.FixtureRequest, hvjob_cluster_factory: Callable[..., SimulatedCluster]
) -> SimulatedCluster:
    """A started simulated cluster, configured by the ``hvjob_cluster`` marker when there is one."""
    marker = request.node.get_closest_marker("hvjob_cluster")
    args = marker.args if marker is not None else ()
    options = dict(marker.kwargs) if marker is not None else {}
    return hvjob_cluster_factory(*args, **options)
