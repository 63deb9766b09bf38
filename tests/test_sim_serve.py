"""``hvjob serve --simulate`` as a real subprocess, driven by the real ``hvjob`` command.

The first stdout line is one JSON object naming the cluster and each node's URL; every request is
then one line on stderr; the control API answers over HTTP; Ctrl-C ends it cleanly. The demo's
story runs on it: list the running exports across the cluster, stop one with --cluster (once, on
its owner, Killed), stop it again (unchanged), kill a finished job, wait for a job to complete
(the clock advanced through the control API), show a failed job's errors.
"""

from __future__ import annotations

import base64
import http.client
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import CANARY_PASSWORD
from hvjob.testing.sim import default

HVJOB = [sys.executable, "-c", "from hvjob.cli import run_cli; run_cli()"]


@dataclass
class Served:
    proc: subprocess.Popen[str]
    cluster: str
    nodes: dict[str, str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    def address(self, node: str) -> str:
        parts = urlsplit(self.nodes[node])
        return f"{parts.hostname}:{parts.port}"

    def resolve(self) -> list[str]:
        return [arg for node in self.nodes for arg in ("--resolve", f"{node}={self.address(node)}")]

    def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        parts = urlsplit(self.nodes[next(iter(self.nodes))])
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        conn.request(method, path, body=json.dumps(body) if body is not None else None)
        response = conn.getresponse()
        data = json.loads(response.read())
        conn.close()
        return response.status, data

    def wait_for_line(self, text: str, timeout: float = 20) -> str:
        while True:
            line = self.lines.get(timeout=timeout)  # raises queue.Empty: the line never came
            if text in line:
                return line


def _start(users_file: Path, *extra: str) -> Served:
    proc = subprocess.Popen(
        [*HVJOB, "serve", "--simulate", *extra, "--port", "0", "--users", str(users_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    if not first:
        raise AssertionError(f"serve did not start: {proc.stderr.read()}")
    started = json.loads(first)
    served = Served(proc, started["cluster"], started["nodes"])
    stderr = proc.stderr

    def pump() -> None:
        for line in stderr:
            served.lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return served


@pytest.fixture
def served(users_file: Path) -> Iterator[Served]:
    running = _start(users_file, "--speed", "0")
    yield running
    if running.proc.poll() is None:
        running.proc.send_signal(signal.SIGINT)
        running.proc.wait(timeout=20)


def hvjob(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"HVJOB_PASSWORD": CANARY_PASSWORD, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [*HVJOB, "--scheme", "http", "-u", "alice", "--output", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def results(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    data = json.loads(proc.stdout)
    found: list[dict[str, Any]] = data["results"]
    return found


def test_the_first_line_names_the_cluster_and_every_node(served: Served) -> None:
    assert served.cluster == "HVCLUSTER"
    assert list(served.nodes) == ["HVNODE01", "HVNODE02", "HVNODE03"]
    assert all(url.startswith("http://127.0.0.1:") and url.endswith("/wsman") for url in served.nodes.values())
    assert len(set(served.nodes.values())) == 3


def test_the_demo_story_runs_on_the_simulator(served: Served) -> None:
    any_node = served.address("HVNODE02")
    listed = hvjob("--cluster", *served.resolve(), "list", any_node, "--state", "Running")
    assert listed.returncode == 0, listed.stderr
    running = {job["InstanceID"] for r in results(listed) for job in r["jobs"]}
    assert running == {default.RUNNING, default.LONG_RUNNING, default.COMPLETING, default.NOT_CANCELLABLE}

    stopped = hvjob("--cluster", *served.resolve(), "stop", any_node, "--job", default.RUNNING)
    assert stopped.returncode == 0, stopped.stderr
    acted = [r for r in results(stopped) if r["changed"]]
    assert [(r["host"], r["method"]) for r in acted] == [("HVNODE01", "RequestStateChange")]
    status, truth = served.control("GET", f"/_hvjob/jobs/{default.RUNNING}")
    assert status == 200 and truth["job"]["state"] == "Killed"

    again = hvjob("--cluster", *served.resolve(), "stop", any_node, "--job", default.RUNNING)
    assert again.returncode == 0 and not any(r["changed"] for r in results(again))

    killed = hvjob("kill", served.address("HVNODE01"), "--job", default.COMPLETED)
    (kill_result,) = results(killed)
    assert killed.returncode == 1 and kill_result["return_value"] == 32775  # the default profile's answer

    assert served.control("POST", "/_hvjob/clock", {"advance": 60})[0] == 200
    waited = hvjob("wait", served.address("HVNODE03"), "--job", default.COMPLETING, "--timeout", "5")
    assert waited.returncode == 0, waited.stderr
    assert results(waited)[0]["job_state"] == "Completed"

    failed = hvjob("errors", served.address("HVNODE02"), "--job", default.FAILED)
    assert failed.returncode == 0, failed.stderr
    (errors,) = results(failed)[0]["errors"]
    assert errors["Message"] == default.FAILED_DESCRIPTION

    status, log = served.control("GET", "/_hvjob/log")
    assert [(e["node"], e["method"], e["job"]) for e in log["log"]] == [
        ("HVNODE01", "RequestStateChange", default.RUNNING),
        ("HVNODE01", "KillJob", default.COMPLETED),
        ("HVNODE02", "GetErrorEx", default.FAILED),
    ]
    line = served.wait_for_line("Invoke RequestStateChange")
    assert line.startswith("HVNODE01 Invoke RequestStateChange Msvm_CollectionReferencePointExportJob[InstanceID=")
    assert line.rstrip().endswith("-> ReturnValue 0 -> 200")
    served.wait_for_line("GET /_hvjob/log -> 200")


def test_ctrl_c_exits_cleanly(served: Served) -> None:
    served.proc.send_signal(signal.SIGINT)
    assert served.proc.wait(timeout=20) == 130
    rest = []
    while not served.lines.empty():
        rest.append(served.lines.get())
    assert "Traceback" not in "".join(rest)
    urls = list(served.nodes.values())
    parts = urlsplit(urls[0])
    with pytest.raises(OSError):
        http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=2).request("GET", "/_hvjob/jobs")


def test_a_cluster_file_and_profile_overrides(users_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "cluster.yml"
    path.write_text(
        "cluster: LAB\nnodes: [LABNODE1, LABNODE2]\nspeed: 0\nprofile: {killjob: returns-1}\n"
        "jobs:\n  - {id: LAB-JOB-1, node: LABNODE2, percent: 10}\n"
    )
    running = _start(users_file, str(path), "--profile", "killed_state=Terminated")
    try:
        assert (running.cluster, list(running.nodes)) == ("LAB", ["LABNODE1", "LABNODE2"])
        status, data = running.control("GET", "/_hvjob/cluster")
        assert (
            status == 200
            and data["profile"]["killjob"] == "returns-1"
            and data["profile"]["killed_state"] == "Terminated"
        )
        stop = hvjob("stop", running.address("LABNODE2"), "--job", "LAB-JOB-1")
        assert stop.returncode == 0, stop.stderr
        assert running.control("GET", "/_hvjob/jobs/LAB-JOB-1")[1]["job"]["state"] == "Terminated"
    finally:
        running.proc.send_signal(signal.SIGINT)
        running.proc.wait(timeout=20)


def test_a_bad_cluster_file_is_a_usage_error_naming_file_line_and_field(users_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "cluster.yml"
    path.write_text("nodes: [A]\njobs:\n  - state: Runing\n")
    proc = subprocess.run(
        [*HVJOB, "serve", "--simulate", str(path), "--port", "0", "--users", str(users_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert f"{path}:3: jobs[0].state: 'Runing' is not a job state" in proc.stderr
    assert "Traceback" not in proc.stderr


def _basic_get(url: str) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    token = base64.b64encode(f"alice:{CANARY_PASSWORD}".encode()).decode()
    body = (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header>'
        "<a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</a:Action>"
        "<a:MessageID>uuid:0B0C0D0E-0000-4000-8000-000000000001</a:MessageID>"
        "<w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/wmi/root/HyperVCluster/v2/"
        "Msvm_CollectionReferencePointExportJob</w:ResourceURI>"
        f'<w:SelectorSet><w:Selector Name="InstanceID">{default.RUNNING}</w:Selector></w:SelectorSet>'
        "</s:Header><s:Body/></s:Envelope>"
    )
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/soap+xml;charset=UTF-8"}
    conn.request("POST", "/wsman", body=body, headers=headers)
    status = conn.getresponse().status
    conn.close()
    return status


def test_allow_unencrypted_lets_basic_over_plain_http_in(users_file: Path, served: Served) -> None:
    assert _basic_get(served.nodes["HVNODE01"]) == 401  # Windows' default: AllowUnencrypted false
    allowing = _start(users_file, "--allow-unencrypted")
    try:
        assert _basic_get(allowing.nodes["HVNODE01"]) == 200
    finally:
        allowing.proc.send_signal(signal.SIGINT)
        allowing.proc.wait(timeout=20)


def test_simulate_options_need_simulate(users_file: Path) -> None:
    proc = subprocess.run(
        [*HVJOB, "serve", "--nodes", "5", "--port", "0", "--users", str(users_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "need --simulate" in proc.stderr


@pytest.mark.parametrize("simulate", [True, False], ids=["simulator", "fixtures"])
def test_a_port_in_use_names_the_address_and_the_way_out(users_file: Path, simulate: bool) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [*HVJOB, "serve", *(["--simulate"] if simulate else []), "--port", str(port), "--users", str(users_file)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "--port 0 picks free ports" in proc.stderr
