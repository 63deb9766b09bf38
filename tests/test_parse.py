"""Response parsing: checks against the request, typed results, encodings, hostile input."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from conftest import real_responses_dir
from hvjob import errors
from hvjob.wire import build, ns
from hvjob.wire.cim import CimDatetime, CimInterval, EndpointReference, decode_value
from hvjob.wire.parse import (
    CimInstance,
    EnumerationPage,
    IdentifyResult,
    MethodOutput,
    decode_instance,
    describe,
    parse_response,
)

URI = ns.wmi_resource_uri("root/HyperVCluster/v2", "Msvm_CollectionReferencePointExportJob")
OPTS = build.HeaderOptions()
HEAD = (
    '<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
)


def reply(action: str, relates_to: str | None, body: str, head: str = HEAD) -> bytes:
    relates = f"<a:RelatesTo>{relates_to}</a:RelatesTo>" if relates_to else ""
    return (
        f"{head}<s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:1</a:MessageID>"
        f"<a:To>{ns.ANONYMOUS}</a:To>{relates}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def kill_request() -> build.WsmanRequest:
    return build.build_invoke(OPTS, URI, "KillJob", {"DeleteOnKill": False}, {"InstanceID": "J1"})


def kill_output(value: str, extra: str = "") -> str:
    return f'<p:KillJob_OUTPUT xmlns:p="{URI}">{extra}<p:ReturnValue>{value}</p:ReturnValue></p:KillJob_OUTPUT>'


def test_invoke_output_return_value() -> None:
    request = kill_request()
    result = parse_response(request, reply(request.expected_action or "", request.message_id, kill_output("4")))
    assert isinstance(result, MethodOutput)
    assert (result.method, result.return_value, dict(result.out)) == ("KillJob", 4, {})


@pytest.mark.parametrize("wrapped", [True, False])
@pytest.mark.parametrize("cimnamespace", [True, False])
def test_job_out_parameter_epr_in_every_shape(wrapped: bool, cimnamespace: bool) -> None:
    dmtf_uri = ns.CIM_SCHEMA_PREFIX + "Msvm_ConcreteJob"
    selectors = '<w:Selector Name="InstanceID">J&amp;2</w:Selector>'
    if cimnamespace:
        selectors += '<w:Selector Name="__cimnamespace">root/HyperVCluster/v2</w:Selector>'
    epr = (
        f"<a:Address>{ns.ANONYMOUS}</a:Address><a:ReferenceParameters><w:ResourceURI>{dmtf_uri if cimnamespace else URI}"
        f"</w:ResourceURI><w:SelectorSet>{selectors}</w:SelectorSet></a:ReferenceParameters>"
    )
    if wrapped:
        epr = f"<a:EndpointReference>{epr}</a:EndpointReference>"
    request = build.build_invoke(OPTS, URI, "RequestStateChange", {"RequestedState": 5}, {"InstanceID": "J1"})
    body = f'<p:RequestStateChange_OUTPUT xmlns:p="{URI}"><p:Job>{epr}</p:Job><p:ReturnValue>4096</p:ReturnValue></p:RequestStateChange_OUTPUT>'
    result = parse_response(request, reply(request.expected_action or "", request.message_id, body))
    assert isinstance(result, MethodOutput)
    job = result.job
    assert isinstance(job, EndpointReference)
    assert job.key_selectors() == {"InstanceID": "J&2"}
    assert job.address == ns.ANONYMOUS
    # A DMTF class URI + __cimnamespace resolves to the WMI form; a WMI URI is kept as sent.
    assert job.resource_uri == (dmtf_uri if cimnamespace else URI)
    assert job.resolved_resource_uri() == (
        ns.wmi_resource_uri("root/HyperVCluster/v2", "Msvm_ConcreteJob") if cimnamespace else URI
    )
    assert job.cim_namespace == ("root/HyperVCluster/v2" if cimnamespace else None)


@pytest.mark.parametrize("value", ["", "abc", "-1", "4294967296", "1.5"])
def test_missing_or_bad_return_value_is_protocol_error(value: str) -> None:
    request = kill_request()
    body = kill_output(value) if value else f'<p:KillJob_OUTPUT xmlns:p="{URI}"/>'
    with pytest.raises(errors.ProtocolError, match="ReturnValue"):
        parse_response(request, reply(request.expected_action or "", request.message_id, body))


def test_relates_to_mismatch_and_missing() -> None:
    request = kill_request()
    with pytest.raises(errors.RelatesToMismatch):
        parse_response(request, reply(request.expected_action or "", "uuid:OTHER", kill_output("0")))
    with pytest.raises(errors.RelatesToMismatch, match="no RelatesTo"):
        parse_response(request, reply(request.expected_action or "", None, kill_output("0")))
    # Case differences in the UUID are the same id.
    ok = parse_response(
        request, reply(request.expected_action or "", (request.message_id or "").lower(), kill_output("0"))
    )
    assert isinstance(ok, MethodOutput)


def test_fault_with_wrong_relates_to_is_protocol_error() -> None:
    request = kill_request()
    fault = '<s:Fault><s:Code><s:Value>s:Receiver</s:Value></s:Code><s:Reason><s:Text xml:lang="">x</s:Text></s:Reason></s:Fault>'
    with pytest.raises(errors.RelatesToMismatch):
        parse_response(request, reply("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", "uuid:OTHER", fault))


def test_wrong_action_is_protocol_error() -> None:
    request = kill_request()
    with pytest.raises(errors.UnexpectedAction):
        parse_response(request, reply(URI + "/RequestStateChangeResponse", request.message_id, kill_output("0")))
    fault = "<s:Fault><s:Code><s:Value>s:Receiver</s:Value></s:Code></s:Fault>"
    with pytest.raises(errors.UnexpectedAction):
        parse_response(request, reply(URI + "/KillJobResponse", request.message_id, fault))


def test_prefixes_do_not_matter() -> None:
    request = build.build_get(OPTS, URI, {"InstanceID": "J1"})
    head = HEAD.replace("xmlns:s=", "xmlns:soap=").replace("<s:Envelope", "<soap:Envelope")
    data = reply(
        ns.ACTION_GET + "Response",
        request.message_id,
        f'<q:Job xmlns:q="{URI}"><q:JobState>4</q:JobState></q:Job>',
        head,
    )
    data = data.replace(b"<s:", b"<soap:").replace(b"</s:", b"</soap:")
    result = parse_response(request, data)
    assert isinstance(result, CimInstance)
    assert result["JobState"] == "4"


def test_utf16_body_is_accepted() -> None:
    request = build.build_get(OPTS, URI, {"InstanceID": "J1"})
    text = reply(
        ns.ACTION_GET + "Response", request.message_id, f'<p:X xmlns:p="{URI}"><p:Name>Jöb ∑</p:Name></p:X>'
    ).decode()
    data = ('<?xml version="1.0" encoding="utf-16"?>' + text).encode("utf-16")
    result = parse_response(request, data)
    assert isinstance(result, CimInstance) and result["Name"] == "Jöb ∑"
    # UTF-16 without declaration, announced only by the HTTP charset and a BOM.
    result = parse_response(request, text.encode("utf-16"), encoding="utf-16")
    assert isinstance(result, CimInstance) and result["Name"] == "Jöb ∑"


def test_body_invalid_in_its_encoding_is_protocol_error() -> None:
    request = build.build_get(OPTS, URI, {"InstanceID": "J1"})
    data = reply(ns.ACTION_GET + "Response", request.message_id, f'<p:X xmlns:p="{URI}"><p:N>\xff\xfe\xfa</p:N></p:X>')
    data = data.replace("\xff\xfe\xfa".encode(), b"\xff\xfe\xfa")
    with pytest.raises(errors.ProtocolError, match="well-formed"):
        parse_response(request, data)


def test_unknown_charset_is_protocol_error() -> None:
    request = build.build_get(OPTS, URI, {"InstanceID": "J1"})
    data = reply(ns.ACTION_GET + "Response", request.message_id, f'<p:X xmlns:p="{URI}"><p:N>1</p:N></p:X>')
    with pytest.raises(errors.ProtocolError, match="charset 'x-no-such-charset' is unknown"):
        parse_response(request, data, encoding="x-no-such-charset")
    assert isinstance(parse_response(request, data, encoding="UTF-8"), CimInstance)  # parsers are kept per charset


HOSTILE = {
    "xxe_file": b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&x;</s:Body></s:Envelope>',
    "xxe_network": b'<?xml version="1.0"?><!DOCTYPE s SYSTEM "http://127.0.0.1:9/evil.dtd"><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>',
    "billion_laughs": b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;"><!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">]><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>&g;&g;&g;&g;</s:Body></s:Envelope>',
    "truncated": HEAD.encode() + b"<s:Header><a:Action>x</a:Act",
    "not_xml": b"HTTP/1.1 500 Internal Server Error\r\n\r\n<html>oops</html>",
    "empty": b"",
    "html": b"<html><body>Bad Request</body></html>",
    "no_body": HEAD.encode() + b"<s:Header/></s:Envelope>",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_gives_protocol_error(name: str) -> None:
    request = build.build_get(OPTS, URI, {"InstanceID": "J1"})
    with pytest.raises(errors.ProtocolError):
        parse_response(request, HOSTILE[name])


def _get_reply_with_doctype(doctype: str, name_value: str) -> tuple[build.WsmanRequest, bytes]:
    """A Get reply that would be valid, with ``Name`` = the entity, if the DTD were honoured
    (so a parser that expanded it would return an instance instead of refusing)."""
    request = build.build_get(OPTS, URI, {"InstanceID": "J1"})
    body = f'<p:X xmlns:p="{URI}"><p:Name>{name_value}</p:Name></p:X>'
    data = reply(ns.ACTION_GET + "Response", request.message_id, body)
    return request, b'<?xml version="1.0"?>' + doctype.encode() + data


def test_external_entity_file_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("XXE-MARKER-FILE")
    request, data = _get_reply_with_doctype(f'<!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "{secret.as_uri()}">]>', "&x;")
    with pytest.raises(errors.ProtocolError, match="DTD") as info:
        parse_response(request, data)
    assert "XXE-MARKER-FILE" not in f"{info.value} {info.value.to_dict()}"


def test_internal_entities_are_not_expanded() -> None:
    request, data = _get_reply_with_doctype('<!DOCTYPE s:Envelope [<!ENTITY x "XXE-MARKER-INTERNAL">]>', "&x;")
    with pytest.raises(errors.ProtocolError, match="DTD") as info:
        parse_response(request, data)
    assert "XXE-MARKER-INTERNAL" not in f"{info.value} {info.value.to_dict()}"


def test_oversized_body_is_refused_before_parsing() -> None:
    request = build.build_get(OPTS, URI, {"InstanceID": "J1"})
    with pytest.raises(errors.ResponseTooLarge):
        parse_response(request, b"<" + b"a" * 2000, max_bytes=1000)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_give_documented_errors(data: bytes) -> None:
    request = build.build_get(OPTS, URI, {"InstanceID": "J1"})
    with contextlib.suppress(errors.ProtocolError, errors.WSManFault):
        parse_response(request, data)


@settings(max_examples=150, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=60))
def test_arbitrary_text_in_an_envelope_only_gives_documented_errors(text: str) -> None:
    request = kill_request()
    data = reply(request.expected_action or "", request.message_id, text)
    with contextlib.suppress(errors.ProtocolError, errors.WSManFault):
        parse_response(request, data)


def test_identify_has_no_addressing_headers() -> None:
    body = (
        '<wsmid:IdentifyResponse xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
        "<wsmid:ProtocolVersion>http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd</wsmid:ProtocolVersion>"
        "<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>"
        "<wsmid:ProductVersion>OS: 10.0.17763 SP: 0.0 Stack: 3.0</wsmid:ProductVersion>"
        "<wsmid:SecurityProfiles><wsmid:SecurityProfileName>http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/spnego-kerberos</wsmid:SecurityProfileName></wsmid:SecurityProfiles>"
        "</wsmid:IdentifyResponse>"
    )
    data = f'<s:Envelope xmlns:s="{ns.SOAP}"><s:Header/><s:Body>{body}</s:Body></s:Envelope>'.encode()
    result = parse_response(build.build_identify(), data)
    assert isinstance(result, IdentifyResult)
    assert result.product_vendor == "Microsoft Corporation"
    assert result.security_profiles[0].endswith("spnego-kerberos")
    with pytest.raises(errors.ProtocolError, match="addressing"):
        parse_response(build.build_identify(), reply("urn:x", "uuid:1", body))


# --- real captures -------------------------------------------------------------------------------


def _real(name: str) -> bytes:
    return (real_responses_dir() / name).read_bytes()


def _matching_request(data: bytes, operation: str, action: str, method: str | None = None) -> build.WsmanRequest:
    relates = re.search(rb"RelatesTo>([^<]+)<", data)
    assert relates is not None
    return build.WsmanRequest(operation, b"", relates.group(1).decode(), action, "urn:r", method=method)  # type: ignore[arg-type]


def test_real_invoke_output_with_array_out_parameter() -> None:
    data = _real("openwsman_invoke_StdRegProv_EnumKey_OUTPUT_returnvalue_2003.xml")
    uri = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/default/StdRegProv"
    result = parse_response(_matching_request(data, "Invoke", uri + "/EnumKey", "EnumKey"), data)
    assert isinstance(result, MethodOutput)
    assert result.return_value == 0
    names = result.out["sNames"]
    assert isinstance(names, list) and len(names) == 26 and names[0] == "AddressBook"


def test_real_enumerate_pull_and_end_of_sequence() -> None:
    first = _real("txwinrm_2012_enumerate_Win32_Service_star_000.xml")
    page = parse_response(_matching_request(first, "Enumerate", ns.ACTION_ENUMERATE), first)
    assert isinstance(page, EnumerationPage)
    assert page.context == "uuid:6C0AB864-47F9-4D3E-8601-B786754BBABB" and not page.end_of_sequence
    assert page.items[0].class_name == "Win32_Service"
    assert page.items[0]["Name"] == "AeLookupSvc"
    assert page.items[0]["InstallDate"] is None
    pulled = _real("txwinrm_2012_pull_Win32_Service_star_001.xml")
    page = parse_response(_matching_request(pulled, "Pull", ns.ACTION_PULL), pulled)
    assert isinstance(page, EnumerationPage) and len(page.items) > 10 and page.context
    last = _real("txwinrm_2012_pull_Win32_Service_star_003_EndOfSequence.xml")
    page = parse_response(_matching_request(last, "Pull", ns.ACTION_PULL), last)
    assert isinstance(page, EnumerationPage) and page.end_of_sequence


def test_real_xml_fragment_items_and_optimized_single_page() -> None:
    data = _real("txwinrm_2012_enumerate_Win32_Service_selectprops_XmlFragment_000.xml")
    page = parse_response(_matching_request(data, "Enumerate", ns.ACTION_ENUMERATE), data)
    assert isinstance(page, EnumerationPage)
    assert page.items[0].class_name is None
    assert page.items[0]["Name"] == "AeLookupSvc" and page.items[0]["InstallDate"] is None
    data = _real("txwinrm_2012_enumerate_Win32_OperatingSystem_optimized_single.xml")
    page = parse_response(_matching_request(data, "Enumerate", ns.ACTION_ENUMERATE), data)
    assert isinstance(page, EnumerationPage)
    assert page.end_of_sequence and page.context is None
    item = page.items[0]
    assert item["InstallDate"] == CimDatetime(dt.datetime(2013, 3, 9, 2, 57, 32, tzinfo=dt.timezone.utc))
    assert item["CSDVersion"] is None


def test_real_get_config() -> None:
    import yaml

    doc = yaml.safe_load((real_responses_dir() / "pypsrp_test_wsman_update_envelope_size_150.yml").read_text())
    data = doc["messages"][0]["response"].encode()
    result = parse_response(_matching_request(data, "Get", ns.ACTION_GET), data)
    assert isinstance(result, CimInstance)
    assert result["MaxEnvelopeSizekb"] == "150"


def test_describe_every_real_capture() -> None:
    import yaml

    base = real_responses_dir()
    kinds = {}
    for path in sorted(base.glob("*.xml")):
        kinds[path.name] = describe(path.read_bytes())["kind"]
    for path in sorted(base.glob("pypsrp_*.yml")):
        for i, message in enumerate(yaml.safe_load(path.read_text())["messages"]):
            kinds[f"{path.name}#{i}"] = describe(message["response"].encode())["kind"]
    assert kinds["openwsman_invoke_StdRegProv_EnumKey_OUTPUT_returnvalue_2003.xml"] == "method_output"
    assert kinds["txwinrm_2012_pull_Win32_Service_star_001.xml"] == "enumeration"
    assert kinds["omi_TestTimeoutResponse.xml"] == "fault"
    assert kinds["pypsrp_test_wsman_update_envelope_size_150.yml#0"] == "instance"
    # Every capture with an s:Fault decodes as a fault, and no other does.
    is_fault = {name: b":Fault>" in _capture_bytes(base, name) for name in kinds}
    assert {name for name, kind in kinds.items() if kind == "fault"} == {n for n, f in is_fault.items() if f}
    assert sum(is_fault.values()) >= 15 and len(kinds) > sum(is_fault.values()) + 5


def _capture_bytes(base: Path, name: str) -> bytes:
    import yaml

    file_name, _, index = name.partition("#")
    if not index:
        return (base / file_name).read_bytes()
    return str(yaml.safe_load((base / file_name).read_text())["messages"][int(index)]["response"]).encode()


# --- the same instance as a typed element and as a w:XmlFragment -------------------------------

_FRAGMENT_UNQUALIFY = {ns.CIM_COMMON}


def _as_xml_fragment(typed: etree._Element) -> etree._Element:
    """The ``select <properties>`` form of a typed instance (NOTES 5): the properties and the CIM
    value wrappers lose their namespace; xsi:nil keeps its own, as in the real txwinrm capture."""
    fragment = etree.Element(f"{{{ns.WSMAN}}}XmlFragment", nsmap={"w": ns.WSMAN, "xsi": ns.XSI})
    for prop in typed:
        copy = etree.SubElement(fragment, etree.QName(prop).localname)
        copy.attrib.update(prop.attrib)
        copy.text = prop.text
        for wrapper in prop:
            name = etree.QName(wrapper)
            tag = name.localname if name.namespace in _FRAGMENT_UNQUALIFY else wrapper.tag
            etree.SubElement(copy, tag).text = wrapper.text
    return fragment


def _typed_items(name: str) -> list[etree._Element]:
    root = etree.fromstring(_real(name))
    items = root.find(f".//{{{ns.WSMAN}}}Items")
    assert items is not None
    return list(items)


def test_xml_fragment_decodes_to_the_same_values_as_the_typed_instance() -> None:
    (typed,) = _typed_items("txwinrm_2012_enumerate_Win32_OperatingSystem_optimized_single.xml")
    fragment = _as_xml_fragment(typed)
    assert fragment.find("LastBootUpTime/Datetime") is not None  # the unqualified wrapper NOTES 5 describes
    from_typed = decode_instance(typed).properties
    from_fragment = decode_instance(fragment).properties
    assert from_fragment == from_typed
    assert from_fragment["LastBootUpTime"] == CimDatetime(
        dt.datetime(2013, 4, 15, 16, 28, 43, 488171, tzinfo=dt.timezone.utc)
    )
    assert from_fragment["CSDVersion"] is None and from_fragment["BuildNumber"] == "9200"


def test_xml_fragment_interval_and_datetime_in_a_job() -> None:
    job = (
        f'<p:Msvm_ConcreteJob xmlns:p="{URI}" xmlns:cim="{ns.CIM_COMMON}" xmlns:xsi="{ns.XSI}">'
        "<p:ElapsedTime><cim:Interval>P0DT0H4M12.500000S</cim:Interval></p:ElapsedTime>"
        "<p:StartTime><cim:Datetime>2026-11-25T03:02:11.123456Z</cim:Datetime></p:StartTime>"
        '<p:JobState>4</p:JobState><p:UntilTime xsi:nil="true"/></p:Msvm_ConcreteJob>'
    )
    typed = etree.fromstring(job)
    assert decode_instance(_as_xml_fragment(typed)).properties == decode_instance(typed).properties
    assert decode_instance(_as_xml_fragment(typed))["ElapsedTime"] == CimInterval(dt.timedelta(seconds=252.5))


def test_decode_of_a_select_properties_enumeration_prints_values_not_markup() -> None:
    (typed,) = _typed_items("txwinrm_2012_enumerate_Win32_OperatingSystem_optimized_single.xml")
    star = _real("txwinrm_2012_enumerate_Win32_OperatingSystem_optimized_single.xml")
    root = etree.fromstring(star)
    items = root.find(f".//{{{ns.WSMAN}}}Items")
    assert items is not None
    items.replace(items[0], _as_xml_fragment(typed))
    selected = describe(etree.tostring(root))
    assert selected["items"] == describe(star)["items"]
    assert selected["items"][0]["LastBootUpTime"] == "2013-04-15T16:28:43.488171+00:00"


@pytest.mark.parametrize("qualified", [True, False])
def test_xml_fragment_reference_property_in_either_spelling(qualified: bool) -> None:
    # Unrecorded: whether a REF property selected into a fragment keeps the EPR's namespaces.
    a, w = ("a:", "w:") if qualified else ("", "")
    fragment = (
        f'<w:XmlFragment xmlns:w="{ns.WSMAN}" xmlns:a="{ns.ADDRESSING}"><Job><{a}Address>{ns.ANONYMOUS}</{a}Address>'
        f"<{a}ReferenceParameters><{w}ResourceURI>{URI}</{w}ResourceURI><{w}SelectorSet>"
        f'<{w}Selector Name="InstanceID">J1</{w}Selector></{w}SelectorSet></{a}ReferenceParameters></Job></w:XmlFragment>'
    )
    assert decode_instance(etree.fromstring(fragment))["Job"] == EndpointReference(URI, {"InstanceID": "J1"})


def test_unqualified_wrappers_outside_a_fragment_stay_markup() -> None:
    # A typed instance's wrappers are cim-qualified; an unqualified child there is some other structure.
    typed = etree.fromstring(f'<p:X xmlns:p="{URI}"><p:When><Datetime>2013-04-15T16:28:43Z</Datetime></p:When></p:X>')
    value = decode_instance(typed)["When"]
    assert isinstance(value, str) and value.startswith("<Datetime") and value.endswith("43Z</Datetime>")


@pytest.mark.parametrize(
    ("text", "expected"), [("true", True), ("1", True), (" TRUE ", True), ("false", False), ("0", False)]
)
def test_xsi_typed_booleans_take_every_xs_boolean_spelling(text: str, expected: bool) -> None:
    element = etree.fromstring(
        f'<p:Cancellable xmlns:p="{URI}" xmlns:xsi="{ns.XSI}" xsi:type="cim:cimBoolean">{text}</p:Cancellable>'
    )
    assert decode_value(element) is expected


def test_xsi_typed_boolean_that_is_not_one_is_a_protocol_error() -> None:
    element = etree.fromstring(
        f'<p:Cancellable xmlns:p="{URI}" xmlns:xsi="{ns.XSI}" xsi:type="cim:cimBoolean">yes</p:Cancellable>'
    )
    with pytest.raises(errors.ProtocolError, match="not a boolean"):
        decode_value(element)
