"""Foreign clients (pywinrm, pypsrp) drive KillJob and RequestStateChange on the simulator and see
the state change through Get: the simulator is not shaped to hvjob's own client.

The envelopes for pywinrm are written here by hand, as a user's script would write them, and the
replies are read with the standard library's ElementTree: nothing of hvjob's wire layer is used.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import winrm.transport
from pypsrp.wsman import SelectorSet, WSMan

from conftest import CANARY_PASSWORD
from hvjob.testing import make_pki
from hvjob.testing.sim import SimulatedCluster, default

EXPORT_URI = (
    "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/HyperVCluster/v2/Msvm_CollectionReferencePointExportJob"
)
GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
HEADER = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header>'
    '<a:To>{to}</a:To><a:ReplyTo><a:Address s:mustUnderstand="true">'
    "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>"
    '<a:Action s:mustUnderstand="true">{action}</a:Action>'
    "<a:MessageID>uuid:{mid}</a:MessageID>"
    '<w:ResourceURI s:mustUnderstand="true">{uri}</w:ResourceURI>'
    '<w:OperationTimeout>PT20S</w:OperationTimeout><w:SelectorSet><w:Selector Name="InstanceID">{job}</w:Selector>'
    "</w:SelectorSet></s:Header><s:Body>{body}</s:Body></s:Envelope>"
)
P = f"{{{EXPORT_URI}}}"


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.txt"
    path.write_text(f":alice:{CANARY_PASSWORD}\n")
    return path


def _envelope(to: str, action: str, job: str, body: str = "") -> bytes:
    return HEADER.format(to=to, action=action, mid=uuid.uuid4(), uri=EXPORT_URI, job=job, body=body).encode()


def _pywinrm(url: str) -> winrm.transport.Transport:
    return winrm.transport.Transport(
        endpoint=url, username="alice", password=CANARY_PASSWORD, auth_method="ntlm", message_encryption="always"
    )


def _job_state(reply: bytes | str) -> str | None:
    return ET.fromstring(reply).findtext(f".//{P}JobState")


def _return_value(reply: bytes | str) -> str | None:
    return ET.fromstring(reply).findtext(f".//{P}ReturnValue")


def test_pywinrm_kills_with_killjob_and_sees_it_through_get(cluster: SimulatedCluster) -> None:
    url = cluster.url("HVNODE01")
    transport = _pywinrm(url)
    assert _job_state(transport.send_message(_envelope(url, GET, default.RUNNING))) == "4"
    body = f'<p:KillJob_INPUT xmlns:p="{EXPORT_URI}"><p:DeleteOnKill>false</p:DeleteOnKill></p:KillJob_INPUT>'
    reply = transport.send_message(_envelope(url, f"{EXPORT_URI}/KillJob", default.RUNNING, body))
    assert _return_value(reply) == "0"
    assert _job_state(transport.send_message(_envelope(url, GET, default.RUNNING))) == "9"
    assert cluster.job(default.RUNNING)["state"] == "Killed"


def test_pywinrm_stops_with_request_state_change_through_shutting_down(users_file: Path) -> None:
    with SimulatedCluster(
        speed=0,
        users_file=users_file,
        password=CANARY_PASSWORD,
        username="alice",
        profile={"request_state_change": "async"},
    ) as cluster:
        url = cluster.url("HVNODE02")
        transport = _pywinrm(url)
        body = (
            f'<p:RequestStateChange_INPUT xmlns:p="{EXPORT_URI}"><p:RequestedState>5</p:RequestedState>'
            "</p:RequestStateChange_INPUT>"
        )
        reply = transport.send_message(_envelope(url, f"{EXPORT_URI}/RequestStateChange", default.LONG_RUNNING, body))
        assert _return_value(reply) == "4096"
        tracker = ET.fromstring(reply).findtext(".//{http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd}Selector")
        assert tracker and cluster.job(tracker)["tracks"] == default.LONG_RUNNING
        assert _job_state(transport.send_message(_envelope(url, GET, default.LONG_RUNNING))) == "6"  # Shutting Down
        cluster.advance(cluster.profile.transition_seconds)
        assert _job_state(transport.send_message(_envelope(url, GET, default.LONG_RUNNING))) == "9"


def _selectors(job: str) -> SelectorSet:
    selectors = SelectorSet()
    selectors.add_option("InstanceID", job)
    return selectors


def _pypsrp_state(wsman: WSMan, job: str) -> str | None:
    return wsman.get(EXPORT_URI, selector_set=_selectors(job)).findtext(f".//{P}JobState")


@pytest.mark.parametrize(("auth", "https"), [("ntlm", False), ("negotiate", False), ("basic", True)])
def test_pypsrp_drives_both_methods_and_sees_the_states(
    users_file: Path, tmp_path: Path, auth: str, https: bool
) -> None:
    pki = make_pki(tmp_path / "pki") if https else None
    with SimulatedCluster(
        speed=0,
        users_file=users_file,
        password=CANARY_PASSWORD,
        username="alice",
        tls=pki.server_context() if pki else None,
    ) as cluster:
        port = cluster.fronts[0].port
        extra: dict[str, Any] = {"cert_validation": str(pki.ca_cert)} if pki else {"encryption": "always"}
        wsman = WSMan("127.0.0.1", port=port, ssl=https, auth=auth, username="alice", password=CANARY_PASSWORD, **extra)
        assert _pypsrp_state(wsman, default.RUNNING) == "4"
        body = ET.Element(f"{P}RequestStateChange_INPUT")
        ET.SubElement(body, f"{P}RequestedState").text = "4"  # Terminate
        out = wsman.invoke(
            f"{EXPORT_URI}/RequestStateChange", EXPORT_URI, body, selector_set=_selectors(default.RUNNING)
        )
        assert out.findtext(f".//{P}ReturnValue") == "0"
        assert _pypsrp_state(wsman, default.RUNNING) == "8"  # Terminated
        cluster.add_job(id="PYPSRP-KILL", node="HVNODE01")
        body = ET.Element(f"{P}KillJob_INPUT")
        ET.SubElement(body, f"{P}DeleteOnKill").text = "false"
        out = wsman.invoke(f"{EXPORT_URI}/KillJob", EXPORT_URI, body, selector_set=_selectors("PYPSRP-KILL"))
        assert out.findtext(f".//{P}ReturnValue") == "0"
        assert _pypsrp_state(wsman, "PYPSRP-KILL") == "9"
        assert [(e["method"], e["user"]) for e in cluster.log()] == [
            ("RequestStateChange", "alice"),
            ("KillJob", "alice"),
        ]
