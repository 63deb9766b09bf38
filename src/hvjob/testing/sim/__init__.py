"""A simulated Hyper-V failover cluster behind the fake WinRM front (issue 13; docs/testing.md).

Layout, as moto's batch emulator and pywbem_mock: :mod:`.model` (cluster, nodes, jobs, the method
log; no XML), :mod:`.clock`, :mod:`.providers` (one per class and method), :mod:`.wsman` (parse,
dispatch, render), :mod:`.wql`, :mod:`.render` and :mod:`.faults` (lxml, the captures' shapes),
:mod:`.control` (``/_hvjob/``), :mod:`.profile` (the switches for what nobody has recorded),
:mod:`.config` (the cluster file), :mod:`.default` (the default cluster), :mod:`.cluster`
(:class:`SimulatedCluster`, the listeners).
"""

from hvjob.testing.sim import default
from hvjob.testing.sim.clock import Clock
from hvjob.testing.sim.cluster import SimulatedCluster
from hvjob.testing.sim.config import load_cluster_file
from hvjob.testing.sim.model import ClusterModel, ClusterSpec, JobSpec
from hvjob.testing.sim.profile import NUMBERS, SWITCHES, Profile
from hvjob.testing.sim.providers import register_method_provider

__all__ = [
    "NUMBERS",
    "SWITCHES",
    "Clock",
    "ClusterModel",
    "ClusterSpec",
    "JobSpec",
    "Profile",
    "SimulatedCluster",
    "default",
    "load_cluster_file",
    "register_method_provider",
]
