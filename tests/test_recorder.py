"""Recordings: they replay to the same answers, scrub what names the estate and nothing else,
never replace an earlier recording, and say only what is known of where they came from."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CANARY_PASSWORD, JOB_URI, ROOT, SCENARIOS, job_id, real_responses_dir
from hvjob import __version__
from hvjob.jobs import JobClient
from hvjob.recorder import FixtureRecorder, Scrubber
from hvjob.scenario import load_scenario
from hvjob.testing import FakeWinRMServer
from hvjob.transport import ConnectionOptions, WsmanSession
from hvjob.wire import build, ns
from hvjob.wire.parse import IdentifyResult, describe

HEADERS = build.HeaderOptions()
EXPORT_DIR = "C:\\ClusterStorage\\Volume1\\Backup\\VMGroup1"
PLACEHOLDER_ACCOUNT = re.compile(r"^DOMAIN\d+\\user\d+$")


def _http() -> ConnectionOptions:
    return ConnectionOptions(
        username="alice", password=CANARY_PASSWORD, scheme="http", connect_timeout=5, operation_timeout=5
    )


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc


def _comparable(result: dict[str, Any]) -> dict[str, Any]:
    """What two runs of the same calls share: not the host, the timing or each request's MessageID."""
    kept = {k: v for k, v in result.items() if k not in ("host", "elapsed_ms")}
    kept["requests"] = [{k: v for k, v in r.items() if k != "message_id"} for r in kept.get("requests", [])]
    for job in kept.get("jobs") or []:
        if isinstance(job, dict) and "requests" in job:
            job["requests"] = [{k: v for k, v in r.items() if k != "message_id"} for r in job["requests"]]
    return kept


def _session_calls(client: JobClient) -> list[dict[str, Any]]:
    return [
        _comparable(client.show(job_id(0x302)).to_dict()),
        _comparable(client.kill(job_id(0x100)).to_dict()),
        _comparable(client.list().to_dict()),
        _comparable(client.errors(job_id(0x371)).to_dict()),
        _comparable(client.stop(job_id(0x302), wait=True).to_dict()),
    ]


# --- round trip ----------------------------------------------------------------------------------


def test_a_recording_replays_to_the_same_answers(
    http_server: FakeWinRMServer, users_file: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "recorded"
    recorder = FixtureRecorder(directory, "session", endpoint=http_server.url, username="alice")
    with WsmanSession(http_server.url, _http(), recorder=recorder) as session:
        live = _session_calls(JobClient(session))
    path = recorder.save()
    assert path == directory / "session.yml" and recorder.path == path

    with FakeWinRMServer(directory, users_file=users_file) as replay:
        with WsmanSession(replay.url, _http()) as session:
            replayed = _session_calls(JobClient(session))
        assert replay.stats.unmatched == []

    # The same answers, but for the owner, which the recording scrubbed to a placeholder.
    owner = replayed[0]["properties"]["Owner"]
    assert PLACEHOLDER_ACCOUNT.match(owner), owner
    assert live[0]["properties"]["Owner"] == "CONTOSO\\backup-svc"
    expected = json.dumps(live).replace(json.dumps("CONTOSO\\backup-svc"), json.dumps(owner))
    assert json.dumps(replayed) == expected
    assert replayed[0]["properties"]["ExportDirectory"] == EXPORT_DIR

    text = path.read_text(encoding="utf-8")
    assert "CONTOSO" not in text and "contoso" not in text and "backup-svc" not in text and "HVNODE01" not in text
    assert CANARY_PASSWORD not in text


# --- scrubbing -----------------------------------------------------------------------------------


def _record(
    replies: list[tuple[build.WsmanRequest, int, bytes]],
    tmp_path: Path,
    *,
    endpoint: str = "https://hvnode01.contoso.test:5986/wsman",
    username: str | None = "CONTOSO\\admin",
) -> dict[str, Any]:
    recorder = FixtureRecorder(tmp_path, "scrubbed", endpoint=endpoint, username=username)
    for request, status, body in replies:
        recorder(request, status, body)
    return _load(recorder.save())


def _get(selectors: dict[str, str] | None = None, uri: str = JOB_URI) -> build.WsmanRequest:
    return build.build_get(HEADERS, uri, selectors or {"InstanceID": job_id(0x302)})


def _envelope(body: str, action: str = ns.ACTION_GET + "Response") -> bytes:
    return (
        f'<s:Envelope xml:lang="en-US" xmlns:s="{ns.SOAP}" xmlns:a="{ns.ADDRESSING}" xmlns:w="{ns.WSMAN}">'
        f"<s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:1</a:MessageID>"
        f"<a:RelatesTo>uuid:2</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _job(properties: str) -> bytes:
    return _envelope(
        f'<p:Msvm_CollectionReferencePointExportJob xmlns:p="{JOB_URI}" xmlns:xsi="{ns.XSI}" '
        f'xmlns:cim="{ns.CIM_COMMON}">{properties}</p:Msvm_CollectionReferencePointExportJob>'
    )


def _scenario_reply(scenario: str, index: int) -> bytes:
    return load_scenario(SCENARIOS / f"{scenario}.yml").exchanges[index].body.encode()


def _properties(body: str) -> dict[str, Any]:
    described = describe(body.encode())
    if described["kind"] == "enumeration":
        item: dict[str, Any] = described["items"][0]
        return item
    properties: dict[str, Any] = described["properties"]
    return properties


def test_export_job_keeps_paths_namespaces_and_uris(tmp_path: Path) -> None:
    cluster_uri = ns.wmi_resource_uri("root/HyperVCluster/v2", "Msvm_ConcreteJob")
    virtualization = ns.CIM_SCHEMA_PREFIX + "Msvm_StorageJob"
    doc = _record(
        [
            (_get(), 200, _scenario_reply("stop_rsc_4096_job_epr", 0)),
            (_get(), 200, _scenario_reply("stop_rsc_4096_job_epr", 1)),  # Job EPR with __cimnamespace
            (_get({"InstanceID": "J1", "__cimnamespace": "root\\virtualization\\v2"}, virtualization), 200, b""),
            (_get({"InstanceID": "J2"}, cluster_uri), 500, _scenario_reply("stop_access_denied", 1)),
        ],
        tmp_path,
    )
    first, epr, selectors, fault = doc["exchanges"]
    properties = _properties(first["response"]["body"])
    original = _properties(_scenario_reply("stop_rsc_4096_job_epr", 0).decode())
    assert PLACEHOLDER_ACCOUNT.match(properties["Owner"])
    assert {k: v for k, v in properties.items() if k != "Owner"} == {k: v for k, v in original.items() if k != "Owner"}
    assert properties["ExportDirectory"] == EXPORT_DIR
    assert '<w:Selector Name="__cimnamespace">root/HyperVCluster/v2</w:Selector>' in epr["response"]["body"]
    assert f"<w:ResourceURI>{cluster_uri}</w:ResourceURI>" in epr["response"]["body"]
    assert selectors["request"]["selectors"] == {"InstanceID": "J1", "__cimnamespace": "root\\virtualization\\v2"}
    assert selectors["request"]["resource_uri"] == virtualization
    assert re.search(r'Machine="HOST\d+\.DOMAIN\d+"', fault["response"]["body"])
    everything = json.dumps(doc)
    assert "contoso" not in everything.lower() and "HVNODE01" not in everything and "backup-svc" not in everything


def _real_capture(name: str) -> bytes:
    return (real_responses_dir() / name).read_bytes()


def test_real_operating_system_instance(tmp_path: Path) -> None:
    name = "txwinrm_2012_enumerate_Win32_OperatingSystem_optimized_single.xml"
    request = build.build_enumerate(
        HEADERS, ns.wmi_namespace_uri("root/cimv2"), wql="SELECT * FROM Win32_OperatingSystem"
    )
    doc = _record([(request, 200, _real_capture(name))], tmp_path)
    scrubbed = _properties(doc["exchanges"][0]["response"]["body"])
    original = _properties(_real_capture(name).decode())
    changed = {k for k in original if scrubbed[k] != original[k]}
    assert changed == {"CSName", "RegisteredUser", "Organization"}
    assert re.fullmatch(r"HOST\d+", scrubbed["CSName"]) and re.fullmatch(r"user\d+", scrubbed["RegisteredUser"])
    assert re.fullmatch(r"ORG\d+", scrubbed["Organization"])
    assert scrubbed["SystemDirectory"] == "C:\\Windows\\system32"
    assert scrubbed["Name"] == "Microsoft Windows Server 2012 Standard|C:\\Windows|\\Device\\Harddisk0\\Partition2"


def test_real_xml_fragment_items(tmp_path: Path) -> None:
    name = "txwinrm_2012_enumerate_Win32_Service_selectprops_XmlFragment_000.xml"
    request = build.build_enumerate(HEADERS, ns.wmi_namespace_uri("root/cimv2"), wql="SELECT Name FROM Win32_Service")
    doc = _record([(request, 200, _real_capture(name))], tmp_path)
    body = doc["exchanges"][0]["response"]["body"]
    scrubbed, original = _properties(body), _properties(_real_capture(name).decode())
    assert {k for k in original if scrubbed[k] != original[k]} == {"SystemName"}
    assert scrubbed["StartName"] == "localSystem"  # a well-known account names nobody
    assert scrubbed["PathName"] == "C:\\Windows\\system32\\svchost.exe -k netsvcs"
    assert "AMAZONA-SDFU7B1" not in body


def test_real_faults_keep_their_meaning(tmp_path: Path) -> None:
    names = ["omi_TestInnerMessageFaultResponse.xml", "winrb_wmi_fault_cannotprocessfilter_extendedstatus_2008r2.xml"]
    doc = _record([(_get(), 500, _real_capture(n)) for n in names], tmp_path)
    for name, exchange in zip(names, doc["exchanges"], strict=True):
        body = exchange["response"]["body"]
        scrubbed, original = describe(body.encode()), describe(_real_capture(name))
        assert re.fullmatch(r"HOST\d+(\.DOMAIN\d+)?", scrubbed["machine"]), scrubbed["machine"]
        for key in ("type", "wsman_code", "fault_subcode", "message"):
            assert scrubbed[key] == original[key], (name, key)
    omi = doc["exchanges"][0]["response"]["body"]
    assert "10.68.240.26" not in omi and "VMMUR-W12R2-02" not in omi and "SCX.com" not in omi
    assert 'path="C:\\Windows\\system32\\WsmWmiPl.dll"' in omi  # not DOMAIN\user
    assert 'Win32_Process.Handle="29"' in omi


def test_host_names_only_as_whole_names(tmp_path: Path) -> None:
    text = (
        "<p:ElementName>hvnode01x, myhvnode01, hvnode01-old and hvnode01.backup.test</p:ElementName>"
        "<p:Description>Moved from HVNODE01 to hvnode01.contoso.test (hvnode01)</p:Description>"
        "<p:Caption>Owned by CONTOSO\\admin, admin@contoso.test; not admin2 or sysadmin</p:Caption>"
    )
    doc = _record([(_get(), 200, _job(text))], tmp_path)
    properties = _properties(doc["exchanges"][0]["response"]["body"])
    # hvnode01.backup.test names the host too (its short name), only the domain is unknown.
    assert re.fullmatch(r"hvnode01x, myhvnode01, hvnode01-old and HOST(\d+)\.backup\.test", properties["ElementName"])
    assert re.fullmatch(r"Moved from HOST(\d+) to HOST\1\.DOMAIN\d+ \(HOST\1\)", properties["Description"])
    assert re.fullmatch(
        r"Owned by DOMAIN(\d+)\\user(\d+), user\2@DOMAIN\d+; not admin2 or sysadmin", properties["Caption"]
    )


def test_sids_and_credential_like_values(tmp_path: Path) -> None:
    sid = "S-1-5-21-1004336348-1177238915-682003330-512"
    text = (
        f"<p:Owner>{sid}</p:Owner><p:Description>granted to {sid} and S-1-5-18</p:Description>"
        '<p:Password>hunter2</p:Password><p:AuthToken>abc.def</p:AuthToken><p:Notify xsi:nil="true"/>'
        "<p:ElementName>Token bucket of the password policy</p:ElementName>"
    )
    doc = _record([(_get(), 200, _job(text))], tmp_path)
    body = doc["exchanges"][0]["response"]["body"]
    properties = _properties(body)
    assert properties["Owner"] == "S-1-5-21-REDACTED-1"
    assert properties["Description"] == "granted to S-1-5-21-REDACTED-1 and S-1-5-18"
    assert properties["Password"] == "REDACTED" and properties["AuthToken"] == "REDACTED"
    assert properties["Notify"] is None and 'Notify xsi:nil="true"/>' in body
    assert properties["ElementName"] == "Token bucket of the password policy"
    assert "hunter2" not in body and "1004336348" not in body


def test_embedded_instances_as_cim_xml_text_and_as_nested_xml(tmp_path: Path) -> None:
    cimxml = (
        '<INSTANCE CLASSNAME="Msvm_Error"><PROPERTY NAME="Owner" TYPE="string"><VALUE>CONTOSO\\backup-svc</VALUE>'
        '</PROPERTY><PROPERTY NAME="Message" TYPE="string"><VALUE>cannot write C:\\ClusterStorage\\Volume1\\Backup'
        '</VALUE></PROPERTY><PROPERTY NAME="Password" TYPE="string"><VALUE>hunter2</VALUE></PROPERTY></INSTANCE>'
    )
    escaped = cimxml.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    uri = ns.wmi_resource_uri("root/HyperVCluster/v2", "Msvm_Error")
    nested = (
        f'<p:Errors><q:Msvm_Error xmlns:q="{uri}"><q:Owner>CONTOSO\\backup-svc</q:Owner>'
        "<q:Message>The export to C:\\ClusterStorage\\Volume1\\Backup failed.</q:Message></q:Msvm_Error></p:Errors>"
    )
    output = (
        f'<p:GetErrorEx_OUTPUT xmlns:p="{JOB_URI}"><p:Error>{escaped}</p:Error>{nested}'
        "<p:ReturnValue>0</p:ReturnValue></p:GetErrorEx_OUTPUT>"
    )
    request = build.build_invoke(HEADERS, JOB_URI, "GetErrorEx", [], {"InstanceID": job_id(0x371)})
    doc = _record([(request, 200, _envelope(output, JOB_URI + "/GetErrorExResponse"))], tmp_path)
    body = doc["exchanges"][0]["response"]["body"]
    out = describe(body.encode())["out"]
    assert re.search(r"&lt;VALUE&gt;DOMAIN\d+\\user\d+&lt;/VALUE&gt;", body)
    assert "cannot write C:\\ClusterStorage\\Volume1\\Backup&lt;/VALUE&gt;" in body
    assert "&lt;VALUE&gt;REDACTED&lt;/VALUE&gt;" in body and "hunter2" not in body
    assert out["Error"].startswith('<INSTANCE CLASSNAME="Msvm_Error">')  # still CIM-XML text
    assert re.search(r"<q:Owner>DOMAIN\d+\\user\d+</q:Owner>", out["Errors"])
    assert "The export to C:\\ClusterStorage\\Volume1\\Backup failed." in out["Errors"]
    assert "CONTOSO" not in body and "backup-svc" not in body


def test_a_reply_that_is_not_xml_is_scrubbed_as_text(tmp_path: Path) -> None:
    page = b"<html><body>hvnode01.contoso.test refused CONTOSO\\admin (S-1-5-21-1-2-3-4)<password>x</password>"
    doc = _record([(_get(), 500, page)], tmp_path)
    body = doc["exchanges"][0]["response"]["body"]
    assert re.fullmatch(
        r"<html><body>HOST\d+\.DOMAIN\d+ refused DOMAIN\d+\\user\d+ \(S-1-5-21-REDACTED-1\)<password>REDACTED</password>",
        body,
    ), body


def test_a_utf16_reply_is_recorded_as_text_not_mojibake(tmp_path: Path) -> None:
    utf8 = _job("<p:ElementName>Jöb ∑ on HVNODE01</p:ElementName><p:JobState>4</p:JobState>")
    utf16 = ('<?xml version="1.0" encoding="utf-16"?>' + utf8.decode()).encode("utf-16")
    doc = _record([(_get(), 200, utf16)], tmp_path)
    properties = _properties(doc["exchanges"][0]["response"]["body"])  # replayed as UTF-8, so no declaration
    assert re.fullmatch(r"Jöb ∑ on HOST\d+", properties["ElementName"]) and properties["JobState"] == 4


def test_the_same_name_gets_the_same_placeholder_across_exchanges(tmp_path: Path) -> None:
    # The Machine attribute arrives last; the host is scrubbed in the earlier reply too.
    first = _job("<p:Description>queued on VMMUR-W12R2-02 by CONTOSO\\backup-svc</p:Description>")
    doc = _record(
        [(_get(), 200, first), (_get(), 500, _real_capture("omi_TestInnerMessageFaultResponse.xml"))],
        tmp_path,
        username=None,
    )
    description = _properties(doc["exchanges"][0]["response"]["body"])["Description"]
    machine = describe(doc["exchanges"][1]["response"]["body"].encode())["machine"]
    match = re.match(r"queued on (HOST\d+) by ", description)
    assert match, description
    assert machine.startswith(match.group(1) + ".")


# --- nothing overwritten -------------------------------------------------------------------------


def _recorder_with(directory: Path, name: str, marker: str) -> FixtureRecorder:
    recorder = FixtureRecorder(directory, name, description=marker)
    recorder(_get(), 200, _job(f"<p:ElementName>{marker}</p:ElementName>"))
    return recorder


def test_a_second_recording_of_the_same_name_gets_its_own_file(tmp_path: Path) -> None:
    earlier = tmp_path / "kill-node1.yml"
    earlier.write_text("an earlier recording\n")
    first = _recorder_with(tmp_path, "kill-node1", "first")
    second = _recorder_with(tmp_path, "kill-node1", "second")
    first_path, second_path = first.save(), second.save()
    assert (first_path.name, second_path.name) == ("kill-node1.2.yml", "kill-node1.3.yml")
    assert earlier.read_text() == "an earlier recording\n"
    assert _load(first_path)["description"] == "first" and _load(second_path)["description"] == "second"
    # A later save of the same recorder adds to its own file, and to no other.
    first(_get(), 200, _job("<p:ElementName>later</p:ElementName>"))
    assert first.save() == first_path
    assert len(_load(first_path)["exchanges"]) == 2 and len(_load(second_path)["exchanges"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kill-node1.2.yml", "kill-node1.3.yml", "kill-node1.yml"]


def test_concurrent_recorders_of_one_name_never_clobber_each_other(tmp_path: Path) -> None:
    count = 12
    recorders = [_recorder_with(tmp_path, "list-node1", f"recorder {i}") for i in range(count)]
    start = threading.Barrier(count)
    paths: dict[int, Path] = {}

    def save(index: int) -> None:
        start.wait()
        paths[index] = recorders[index].save()

    threads = [threading.Thread(target=save, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(paths.values())) == count
    assert {_load(path)["description"] for path in paths.values()} == {f"recorder {i}" for i in range(count)}
    for index, path in paths.items():
        assert _load(path)["description"] == f"recorder {index}"


HVJOB = [sys.executable, "-c", "from hvjob.cli import run_cli; run_cli()"]


def test_the_cli_records_twice_into_two_files(http_server: FakeWinRMServer, tmp_path: Path) -> None:
    env = {**os.environ, "HVJOB_PASSWORD": CANARY_PASSWORD}
    args = [*HVJOB, "--scheme", "http", "-u", "alice", "--record", str(tmp_path), "kill"]
    for _ in range(2):
        proc = subprocess.run(
            [*args, f"127.0.0.1:{http_server.port}", "--job", job_id(0x100)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert CANARY_PASSWORD not in proc.stdout + proc.stderr
    files = sorted(tmp_path.glob("*.yml"))
    assert len(files) == 2
    for path in files:
        # --record asks the target to identify itself first, for the recording's origin
        assert [e.request.action for e in load_scenario(path).exchanges] == ["Identify", JOB_URI + "/KillJob"]


# --- origin --------------------------------------------------------------------------------------


def _dates_around_now() -> set[str]:
    now = dt.datetime.now(dt.timezone.utc)
    return {(now + dt.timedelta(minutes=m)).date().isoformat() for m in (-1, 0, 1)}


def test_origin_of_an_unidentified_target(tmp_path: Path) -> None:
    doc = _load(_recorder_with(tmp_path, "plain", "plain").save())
    origin = doc["origin"]
    match = re.fullmatch(
        rf"recorded by hvjob {re.escape(__version__)} on (\S+); target not identified; scrubbed", origin
    )
    assert match and match.group(1) in _dates_around_now(), origin
    assert "real host" not in origin
    assert doc["recorded"]["identify"] is None and doc["recorded"]["hvjob"] == __version__


def test_origin_says_what_the_target_answered_to_identify(tmp_path: Path) -> None:
    recorder = _recorder_with(tmp_path, "identified", "identified")
    recorder.note_identity(
        IdentifyResult(
            "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
            "Microsoft Corporation",
            "OS: 10.0.20348 SP: 0.0 Stack: 3.0",
        )
    )
    doc = _load(recorder.save())
    assert doc["origin"].endswith(
        '; target identified itself (WS-Man Identify) as "Microsoft Corporation", "OS: 10.0.20348 SP: 0.0 Stack: 3.0"; scrubbed'
    )
    assert doc["recorded"]["identify"]["product_version"] == "OS: 10.0.20348 SP: 0.0 Stack: 3.0"


def test_an_identify_through_the_recorded_session_is_noted(http_server: FakeWinRMServer, tmp_path: Path) -> None:
    recorder = FixtureRecorder(tmp_path, "fake", endpoint=http_server.url, username="alice")
    with WsmanSession(http_server.url, _http(), recorder=recorder) as session:
        session.identify()
        JobClient(session).show(job_id(0x302))
    doc = _load(recorder.save())
    # The fake server answers as its Windows model does, and the recording says no more than that.
    assert '"Microsoft Corporation", "OS: 10.0.20348 SP: 0.0 Stack: 3.0"' in doc["origin"]
    assert "real host" not in doc["origin"]
    assert load_scenario(recorder.path or Path()).origin == doc["origin"]


@pytest.mark.parametrize("with_metadata", [True, False])
def test_recordings_with_and_without_metadata_load(tmp_path: Path, with_metadata: bool) -> None:
    path = _recorder_with(tmp_path, "meta", "meta").save()
    doc = _load(path)
    if not with_metadata:  # the format before recordings said what they knew
        del doc["recorded"]
        doc["origin"] = "recorded from a real host by hvjob 0.1.0 on 2025-01-01 (scrubbed)"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    scenario = load_scenario(path)
    assert scenario.origin == doc["origin"] and len(scenario.exchanges) == 1


def test_the_recording_example_in_the_docs_runs(
    http_server: FakeWinRMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ROOT / "docs" / "fixtures.md").read_text(encoding="utf-8")
    section = text[text.index("## Recording from a real host") :]
    (example,) = re.findall(r"```python\n(.*?)```", section[: section.index("\n## ", 5)], re.S)
    monkeypatch.chdir(tmp_path)
    names = {"host": http_server.url, "options": _http(), "user": "alice", "job_id": job_id(0x302)}
    exec(compile(example, "docs/fixtures.md", "exec"), names)
    assert capsys.readouterr().out.strip() == str(Path("captured") / "show-node.yml")
    exec(compile(example, "docs/fixtures.md", "exec"), names)  # a second run keeps the first file
    assert capsys.readouterr().out.strip() == str(Path("captured") / "show-node.2.yml")
    assert "Microsoft Corporation" in load_scenario(tmp_path / "captured" / "show-node.yml").origin


# --- properties over generated data --------------------------------------------------------------

_WORDS = st.sampled_from(
    ["C:", "ClusterStorage", "Volume1", "Backup", "VMGroup1", "root", "virtualization", "v2", "HyperVCluster",
     "hvnode01x", "myhvnode01", "alice2", "contosos", "Windows", "system32", "job", "S-1-5-18"]
)  # fmt: skip
_SEPARATORS = st.sampled_from(["\\", "/", " ", ":", ", ", "|"])


def _scrubber() -> Scrubber:
    return Scrubber(hosts=["hvnode01.contoso.test"], users=["CONTOSO\\alice"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_WORDS, _SEPARATORS), max_size=12))
def test_data_without_known_names_is_left_as_it_is(parts: list[tuple[str, str]]) -> None:
    text = "".join(word + sep for word, sep in parts)
    assert _scrubber().scrub(text) == text


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(_WORDS, _SEPARATORS), max_size=6),
    st.sampled_from(["hvnode01", "HVNODE01.Contoso.Test", "alice", "contoso", "CONTOSO\\alice"]),
    _SEPARATORS,
    st.lists(st.tuples(_WORDS, _SEPARATORS), max_size=6),
)
def test_a_known_name_between_separators_is_always_replaced(
    before: list[tuple[str, str]], name: str, separator: str, after: list[tuple[str, str]]
) -> None:
    prefix = "".join(word + sep for word, sep in before)
    suffix = separator + "".join(word + sep for word, sep in after)
    scrubber = _scrubber()
    placeholder = scrubber.scrub(name)
    assert placeholder != name and name.lower() not in placeholder.lower()
    assert scrubber.scrub(prefix + name + suffix) == prefix + placeholder + suffix


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=2048), st.text(max_size=500).map(_job)))
def test_any_reply_is_recorded_without_an_exception(body: bytes) -> None:
    recorder = FixtureRecorder("unused", "any", endpoint="hvnode01", username="alice")
    recorder(_get(), 500, body)
    response = yaml.safe_load(recorder.render())["exchanges"][0]["response"]
    assert response["status"] == 500 and isinstance(response["body"], str)
