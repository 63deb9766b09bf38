"""Envelope building: golden files (semantic comparison) and exact escaping of values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from lxml import etree

from conftest import FIXTURES, canonical
from hvjob.errors import UsageError
from hvjob.wire import build, ns
from hvjob.wire.cim import CimDatetime, CimInterval, EndpointReference
from hvjob.wire.parse import decode_method_output

JOB_URI = ns.wmi_resource_uri("root\\HyperVCluster\\v2", "Msvm_CollectionReferencePointExportJob")
OPTS = build.HeaderOptions(to="https://node1.example.test:5986/wsman", operation_timeout_s=20)
GOLDEN = FIXTURES / "golden"


def _golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


CASES: dict[str, Callable[[], build.WsmanRequest]] = {
    "identify.xml": build.build_identify,
    "get_job.xml": lambda: build.build_get(OPTS, JOB_URI, {"InstanceID": "B6B2E4D1-0001"}),
    "enumerate_wql.xml": lambda: build.build_enumerate(
        OPTS,
        ns.wmi_namespace_uri("root/HyperVCluster/v2"),
        wql="SELECT * FROM Msvm_CollectionReferencePointExportJob WHERE JobState = 4",
        max_elements=20,
    ),
    "pull.xml": lambda: build.build_pull(OPTS, ns.wmi_namespace_uri("root/HyperVCluster/v2"), "uuid:CTX-1"),
    "release.xml": lambda: build.build_release(OPTS, ns.wmi_namespace_uri("root/HyperVCluster/v2"), "uuid:CTX-1"),
    "invoke_killjob.xml": lambda: build.build_invoke(
        OPTS, JOB_URI, "KillJob", {"DeleteOnKill": False}, {"InstanceID": "B6B2E4D1-0001"}
    ),
    "invoke_requeststatechange.xml": lambda: build.build_invoke(
        OPTS,
        JOB_URI,
        "RequestStateChange",
        {"RequestedState": 5, "TimeoutPeriod": CimInterval(dt.timedelta(seconds=100))},
        {"InstanceID": "B6B2E4D1-0001"},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_envelope_matches_golden(name: str) -> None:
    produced = CASES[name]().payload
    assert canonical(produced) == canonical(_golden(name))


def test_every_golden_file_is_compared() -> None:
    # A golden envelope without a case here would be checked by nothing.
    assert sorted(p.name for p in GOLDEN.glob("*.xml")) == sorted(CASES)


def test_message_ids_are_unique_and_uuid_shaped() -> None:
    ids = {build.build_get(OPTS, JOB_URI, {"InstanceID": "x"}).message_id for _ in range(50)}
    assert len(ids) == 50
    assert all(i and i.startswith("uuid:") and len(i) == 41 for i in ids)


def test_expected_action_and_safety() -> None:
    invoke = CASES["invoke_killjob.xml"]()
    assert invoke.action == JOB_URI + "/KillJob"
    assert invoke.expected_action == JOB_URI + "/KillJobResponse"
    assert not invoke.safe_to_resend
    assert CASES["get_job.xml"]().safe_to_resend


@pytest.mark.parametrize("job_id", ["a<b&c\"d'e", "Jöb-ünïcødé-∑", "  spaced  ", "]]>", "{GUID}"])
def test_selector_values_round_trip_exactly(job_id: str) -> None:
    request = build.build_get(OPTS, JOB_URI, {"InstanceID": job_id})
    root = etree.fromstring(request.payload)
    selector = root.find(f".//{{{ns.WSMAN}}}Selector")
    assert selector is not None
    assert selector.get("Name") == "InstanceID"
    assert selector.text == job_id


def test_wql_filter_requires_namespace_uri() -> None:
    with pytest.raises(UsageError, match="namespace resource URI"):
        build.build_enumerate(OPTS, JOB_URI, wql="SELECT * FROM X")


def test_control_characters_are_refused_not_sent() -> None:
    with pytest.raises(UsageError, match="control characters"):
        build.build_get(OPTS, JOB_URI, {"InstanceID": "bad\x01id"})


def test_invalid_method_name_is_refused() -> None:
    with pytest.raises(UsageError):
        build.build_invoke(OPTS, JOB_URI, "Kill Job</x>", {})


def test_typed_parameters_encode_as_windows_expects() -> None:
    epr = EndpointReference(JOB_URI, {"InstanceID": "J1", "__cimnamespace": "root/HyperVCluster/v2"})
    request = build.build_invoke(
        OPTS,
        JOB_URI,
        "Example",
        [
            ("Flag", True),
            ("Count", -3),
            ("Name", None),
            ("When", CimDatetime(dt.datetime(2013, 3, 9, 3, 6, 25, tzinfo=dt.timezone.utc))),
            ("Wait", CimInterval(dt.timedelta(minutes=1, seconds=40))),
            ("States", [2, 4]),
            ("Target", epr),
        ],
    )
    root = etree.fromstring(request.payload)
    method_input = root.find(f".//{{{JOB_URI}}}Example_INPUT")
    assert method_input is not None
    texts = [(etree.QName(c).localname, c.text) for c in method_input]
    assert texts[:2] == [("Flag", "true"), ("Count", "-3")]
    nil = method_input.find(f"{{{JOB_URI}}}Name")
    assert nil is not None and nil.get(f"{{{ns.XSI}}}nil") == "true"
    assert method_input.findtext(f".//{{{ns.CIM_COMMON}}}Datetime") == "2013-03-09T03:06:25Z"
    assert method_input.findtext(f".//{{{ns.CIM_COMMON}}}Interval") == "P0DT0H1M40S"
    assert [c.text for c in method_input.findall(f"{{{JOB_URI}}}States")] == ["2", "4"]
    # The same element tree decodes back to the values (paired build/parse on one payload).
    method_input.tag = f"{{{JOB_URI}}}Example_OUTPUT"
    etree.SubElement(method_input, f"{{{JOB_URI}}}ReturnValue").text = "0"
    out = decode_method_output(method_input, "Example").out
    assert out["Name"] is None
    assert out["Target"] == epr
    assert out["Wait"] == CimInterval(dt.timedelta(minutes=1, seconds=40))
    assert out["When"] == CimDatetime(dt.datetime(2013, 3, 9, 3, 6, 25, tzinfo=dt.timezone.utc))
    assert out["States"] == ["2", "4"]


def test_operation_timeout_format() -> None:
    assert build.format_timeout(20) == "PT20S"
    assert build.format_timeout(1.5) == "PT1.500S"
    with pytest.raises(UsageError):
        build.format_timeout(0)


# --- property-based round trips: build an Invoke, read the same element back ------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_xml_text = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"), max_size=40)
_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    _xml_text,
    st.none(),
    st.builds(lambda s: CimInterval(dt.timedelta(seconds=s)), st.integers(min_value=0, max_value=10**9)),
    st.builds(
        lambda s: CimDatetime(dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=s)),
        st.integers(min_value=0, max_value=10**9),
    ),
)


def _as_read_back(value: object) -> object:
    """What the parser returns without a schema: integers and booleans as their wire text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return value


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["A", "B", "C", "Deep_Name"]), _scalars),
        min_size=1,
        max_size=4,
        unique_by=lambda item: item[0],
    ),
    _xml_text.filter(lambda s: s.strip() == s),
)
def test_parameter_values_round_trip(params: list[tuple[str, object]], job_id: str) -> None:
    request = build.build_invoke(OPTS, JOB_URI, "M", params, {"InstanceID": job_id})  # type: ignore[arg-type]
    root = etree.fromstring(request.payload)
    selector = root.find(f".//{{{ns.WSMAN}}}Selector")
    assert selector is not None
    assert (selector.text or "") == job_id  # lxml reads an empty element's text as None
    method_input = root.find(f".//{{{JOB_URI}}}M_INPUT")
    assert method_input is not None
    method_input.tag = f"{{{JOB_URI}}}M_OUTPUT"
    etree.SubElement(method_input, f"{{{JOB_URI}}}ReturnValue").text = "0"
    out = decode_method_output(method_input, "M").out
    assert out == {name: _as_read_back(value) for name, value in params}
