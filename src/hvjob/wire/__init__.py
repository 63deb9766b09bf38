"""The WS-Man wire layer: typed requests to envelope bytes, response bytes to typed results.

No network code lives here; see :mod:`hvjob.transport` for the HTTP side.
"""

from hvjob.wire.build import HeaderOptions, WsmanRequest
from hvjob.wire.cim import CimDatetime, CimInterval, EndpointReference
from hvjob.wire.parse import (
    CimInstance,
    EnumerationPage,
    IdentifyResult,
    MethodOutput,
    describe,
    parse_response,
)

__all__ = [
    "CimDatetime",
    "CimInstance",
    "CimInterval",
    "EndpointReference",
    "EnumerationPage",
    "HeaderOptions",
    "IdentifyResult",
    "MethodOutput",
    "WsmanRequest",
    "describe",
    "parse_response",
]
