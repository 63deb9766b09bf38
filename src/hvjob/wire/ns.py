"""Namespace URIs, action URIs and fixed values of WS-Management as Windows speaks it.

References: [MS-WSMV] 2.2.1 (namespaces), DSP0226 WS-Management 1.1 (headers, faults),
WS-Transfer / WS-Enumeration 2004/09, WS-Addressing 2004/08.
"""

from __future__ import annotations

# [MS-WSMV] 2.2.1 Namespaces
SOAP = "http://www.w3.org/2003/05/soap-envelope"
ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
ENUMERATION = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
WSMAN_MS = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"
WSMAN_FAULT = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"
WSMAN_IDENTITY = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"
CIM_COMMON = "http://schemas.dmtf.org/wbem/wscim/1/common"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML = "http://www.w3.org/XML/1998/namespace"

# Prefixes used in envelopes we build (the server picks its own; we never match on prefix).
NSMAP = {
    "s": SOAP,
    "a": ADDRESSING,
    "n": ENUMERATION,
    "w": WSMAN,
    "p": WSMAN_MS,
}

# WS-Addressing 2004/08 section 2.1: the anonymous reply endpoint.
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

# Action URIs (WS-Transfer 2004/09, WS-Enumeration 2004/09).
ACTION_GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
ACTION_ENUMERATE = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate"
ACTION_PULL = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull"
ACTION_RELEASE = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release"

# Fault actions seen from Windows and OMI (NOTES section 2; real captures).
FAULT_ACTIONS = frozenset(
    {
        "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault",
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault",
        "http://schemas.xmlsoap.org/ws/2004/09/enumeration/fault",
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/fault",
    }
)

# DSP0226 8.5 / [MS-WSMV] 2.2.4.40: the WQL filter dialect of Windows.
DIALECT_WQL = "http://schemas.microsoft.com/wbem/wsman/1/WQL"

# [MS-WSMV] 2.2.4.x: WMI resource URIs, namespace path with "/" separators.
WMI_URI_PREFIX = "http://schemas.microsoft.com/wbem/wsman/1/wmi/"
# DSP0227: the DMTF CIM-schema prefix; Windows accepts it with a __cimnamespace selector.
CIM_SCHEMA_PREFIX = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"

# pypsrp/pywinrm default; Windows default MaxEnvelopeSizekb is 150 (512000 needs the config raised
# only for requests, replies are capped by what we announce).
DEFAULT_MAX_ENVELOPE_SIZE = 512000


def wmi_resource_uri(namespace: str, class_name: str) -> str:
    """``root\\HyperVCluster\\v2`` + class -> ``.../wmi/root/HyperVCluster/v2/CLASS``."""
    return WMI_URI_PREFIX + normalize_namespace(namespace) + "/" + class_name


def wmi_namespace_uri(namespace: str) -> str:
    """The ``.../wmi/<namespace>/*`` URI that a WQL-filtered Enumerate must use (no class)."""
    return WMI_URI_PREFIX + normalize_namespace(namespace) + "/*"


def normalize_namespace(namespace: str) -> str:
    """Accept ``root\\HyperVCluster\\v2`` or ``root/HyperVCluster/v2``; return the slash form."""
    return namespace.replace("\\", "/").strip("/")
