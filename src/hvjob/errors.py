"""Every error hvjob raises, in one tree.

Each class has an ``error_type`` that every front end (library result, CLI JSON, Ansible
``fail_json``) reports in the same words::

    HvjobError                          (base; carries host, request/response XML, never secrets)
    ├── UsageError                      "usage"           bad input from the caller
    ├── TransportError
    │   ├── ConnectionFailed            "connection"      refused, reset, unreachable; or a reply cut short
    │   │   └── NameResolutionFailed    "connection"      DNS
    │   ├── TLSFailed                   "tls"             handshake, unknown CA, wrong host name
    │   ├── AuthenticationFailed        "authentication"  401, rejected credentials, bad CBT
    │   ├── RequestTimedOut             "timeout"         connect or read timeout on a safe request
    │   └── OutcomeUnknown              "outcome_unknown" an Invoke was sent and no answer came
    ├── ProtocolError                   "protocol"        a response arrived but cannot be used
    │   ├── ResponseTooLarge
    │   ├── RelatesToMismatch
    │   └── UnexpectedAction
    ├── WSManFault                      "wsman_fault"     s:Fault decoded (registry by code)
    │   ├── ResourceNotFound            0x80338000, WMI 0x80041002: for a job, it is gone
    │   ├── InvalidSelectors            0x8033805B
    │   ├── OperationTimedOut           w:TimedOut 0x80338029 ("outcome_unknown" on an Invoke)
    │   ├── AccessDenied                5, 0x80070005, WMI 0x80041003
    │   ├── QuotaExceeded               w:QuotaLimit, 0x803381A5, 0x803381A6
    │   ├── NotSupported                a:ActionNotSupported, WMI 0x8004100C
    │   ├── CannotProcessFilter         n:CannotProcessFilter, 0x8033801A
    │   └── InvalidHeader               a:InvalidMessageInformationHeader, 0x8033800F
    ├── MethodFailed                    "method"          a WMI method returned a non-zero ReturnValue
    ├── JobNotCancellable               "method"          Cancellable is false; nothing was sent
    ├── JobFailed                       "method"          the job ended unsuccessfully (wait --require-success)
    ├── WaitTimedOut                    "wait_timeout"    the job was still running when the wait ran out
    ├── Interrupted                     "interrupted"     Ctrl-C: the operation stopped before its next request
    └── InternalError                   "internal"        a bug in hvjob (an exception it did not expect)

Errors never carry credentials: the transport redacts them before an error is built, and
``request_xml``/``response_xml`` are the SOAP payloads after decryption, which hold none.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AccessDenied",
    "AuthenticationFailed",
    "CannotProcessFilter",
    "ConnectionFailed",
    "HvjobError",
    "InternalError",
    "Interrupted",
    "InvalidHeader",
    "InvalidSelectors",
    "JobFailed",
    "JobNotCancellable",
    "MethodFailed",
    "NameResolutionFailed",
    "NotSupported",
    "OperationTimedOut",
    "OutcomeUnknown",
    "ProtocolError",
    "QuotaExceeded",
    "RelatesToMismatch",
    "RequestTimedOut",
    "ResourceNotFound",
    "ResponseTooLarge",
    "TLSFailed",
    "TransportError",
    "UnexpectedAction",
    "UsageError",
    "WSManFault",
    "WaitTimedOut",
    "fault_class_for",
]

#: Error types whose host counts as "unreachable" rather than "failed" in a fan-out summary.
UNREACHABLE_TYPES = frozenset({"connection", "tls", "authentication"})


class HvjobError(Exception):
    """Base of every hvjob error. Keyword attributes only; ``str()`` is the message."""

    error_type: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        request_xml: bytes | None = None,
        response_xml: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.host = host
        self.request_xml = request_xml
        self.response_xml = response_xml

    @property
    def type(self) -> str:
        """The front-end error type (see the module docstring)."""
        return self.error_type

    @property
    def unreachable(self) -> bool:
        """True when the host was never really talked to (connection, TLS, authentication, connect timeout)."""
        return self.type in UNREACHABLE_TYPES

    def drop_tracebacks(self) -> None:
        """Release the frames this error and its causes hold (sessions, response bodies), for
        results kept long after the failure, as in a fan-out over many hosts."""
        seen: set[int] = set()
        current: BaseException | None = self
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            current.__traceback__ = None
            current = current.__cause__ or current.__context__

    def to_dict(self) -> dict[str, Any]:
        """The error as the CLI and Ansible report it (``error`` object of docs/cli.md)."""
        return {
            "type": self.type,
            "message": self.message,
            "wsman_code": None,
            "wmi_code": None,
            "fault_subcode": None,
            "machine": None,
            "reporting_machine": None,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(message={self.message!r}, host={self.host!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by attributes: subclasses take required keyword arguments that ``Exception``'s
        default (``cls(*args)``) would not pass. Fan-out worker processes send errors this way."""
        return (_restore_error, (type(self), self.args), self.__dict__)


def _restore_error(cls: type[HvjobError], args: tuple[Any, ...]) -> HvjobError:
    error = cls.__new__(cls)
    error.args = args
    return error


class UsageError(HvjobError):
    """The caller asked for something that cannot be done (bad value, bad option combination)."""

    error_type = "usage"


class TransportError(HvjobError):
    """The HTTP exchange itself failed."""


class ConnectionFailed(TransportError):
    """Refused, reset, unreachable; or lost while the reply was read (``answered``: its status line
    and headers had come, so the host was reached and is not counted unreachable)."""

    error_type = "connection"

    def __init__(self, message: str, *, answered: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.answered = answered

    @property
    def unreachable(self) -> bool:
        return not self.answered


class NameResolutionFailed(ConnectionFailed):
    pass


class TLSFailed(TransportError):
    error_type = "tls"


class AuthenticationFailed(TransportError):
    error_type = "authentication"


class RequestTimedOut(TransportError):
    """A connect timeout (host unreachable) or a read timeout on a request that is safe to resend."""

    error_type = "timeout"

    def __init__(self, message: str, *, connect: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.connect = connect

    @property
    def unreachable(self) -> bool:
        return self.connect


class OutcomeUnknown(TransportError):
    """An Invoke reached the server (or may have) and no usable answer came back.

    The method may or may not have run; the job must be re-read to know.
    """

    error_type = "outcome_unknown"


class ProtocolError(HvjobError):
    """A response arrived but is not a usable WS-Man reply (bad XML, wrong RelatesTo, ...)."""

    error_type = "protocol"


class ResponseTooLarge(ProtocolError):
    pass


class RelatesToMismatch(ProtocolError):
    pass


class UnexpectedAction(ProtocolError):
    pass


class WSManFault(HvjobError):
    """A decoded ``s:Fault``. Every field the server supplied is kept; missing ones are None.

    ``wsman_code`` is the WS-Management code (outermost ``WSManFault/@Code``, or an
    ``MSFT_WmiError/error_Code`` in the 0x8033xxxx range); ``wmi_code`` is the WMI or provider
    code where there is one. ``message`` is the innermost, most specific text.
    """

    error_type = "wsman_fault"

    def __init__(
        self,
        message: str,
        *,
        soap_code: str | None = None,
        fault_subcode: str | None = None,
        reason: str | None = None,
        wsman_code: int | None = None,
        wmi_code: int | None = None,
        machine: str | None = None,
        reporting_machine: str | None = None,
        fault_detail: str | None = None,
        provider: str | None = None,
        cim_status_code: int | None = None,
        extended_status: dict[str, str | None] | None = None,
        operation: str | None = None,
        relates_to_missing: bool = False,
        http_status: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.soap_code = soap_code
        self.fault_subcode = fault_subcode
        self.reason = reason
        self.wsman_code = wsman_code
        self.wmi_code = wmi_code
        self.machine = machine
        self.reporting_machine = reporting_machine
        self.fault_detail = fault_detail
        self.provider = provider
        self.cim_status_code = cim_status_code
        self.extended_status = extended_status
        self.operation = operation
        self.relates_to_missing = relates_to_missing
        self.http_status = http_status

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(
            wsman_code=self.wsman_code,
            wmi_code=self.wmi_code,
            fault_subcode=self.fault_subcode,
            machine=self.machine,
            reporting_machine=self.reporting_machine,
        )
        return data

    def fields(self) -> dict[str, Any]:
        """Everything decoded from the fault, for ``hvjob decode`` and debugging."""
        return {
            "class": type(self).__name__,
            "message": self.message,
            "soap_code": self.soap_code,
            "fault_subcode": self.fault_subcode,
            "reason": self.reason,
            "wsman_code": self.wsman_code,
            "wmi_code": self.wmi_code,
            "machine": self.machine,
            "reporting_machine": self.reporting_machine,
            "fault_detail": self.fault_detail,
            "provider": self.provider,
            "cim_status_code": self.cim_status_code,
            "extended_status": self.extended_status,
            "relates_to_missing": self.relates_to_missing,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, subcode={self.fault_subcode!r}, "
            f"wsman_code={self.wsman_code!r}, wmi_code={self.wmi_code!r}, machine={self.machine!r})"
        )


class ResourceNotFound(WSManFault):
    """The resource named by URI and selectors does not exist: for a job, it is gone."""


class InvalidSelectors(WSManFault):
    pass


class OperationTimedOut(WSManFault):
    """``w:TimedOut``: the server gave up within OperationTimeout. On an Invoke the method may have run."""

    @property
    def type(self) -> str:
        return "outcome_unknown" if self.operation == "Invoke" else "timeout"


class AccessDenied(WSManFault):
    pass


class QuotaExceeded(WSManFault):
    pass


class NotSupported(WSManFault):
    """The action or method is not supported by the provider (a reason to fall back to KillJob)."""


class CannotProcessFilter(WSManFault):
    pass


class InvalidHeader(WSManFault):
    pass


class MethodFailed(HvjobError):
    """A WMI method ran and returned a non-zero ReturnValue."""

    error_type = "method"

    def __init__(self, message: str, *, method: str, return_value: int, return_name: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.method = method
        self.return_value = return_value
        self.return_name = return_name


# --- fault registry -----------------------------------------------------------------------------
# Codes are decimal as they appear in WSManFault/@Code and MSFT_WmiError/error_Code.
# [MS-WSMV] 2.2.4.x; winerror.h (WSMAN 0x8033xxxx, WBEM 0x8004xxxx).

_CODE_REGISTRY: dict[int, type[WSManFault]] = {
    0x80338000: ResourceNotFound,  # ERROR_WSMAN_INVALID_RESOURCE_URI / resource not found
    0x80041002: ResourceNotFound,  # WBEM_E_NOT_FOUND
    0x8033805B: InvalidSelectors,  # ERROR_WSMAN_INVALID_SELECTORS
    0x80338029: OperationTimedOut,  # ERROR_WSMAN_OPERATION_TIMEDOUT
    5: AccessDenied,  # ERROR_ACCESS_DENIED
    0x80070005: AccessDenied,  # E_ACCESSDENIED
    0x80041003: AccessDenied,  # WBEM_E_ACCESS_DENIED
    0x803381A5: QuotaExceeded,  # ERROR_WSMAN_QUOTA_MAX_SHELLUSERS
    0x803381A6: QuotaExceeded,  # ERROR_WSMAN_QUOTA_MAX_OPERATIONS_USER
    0x8004100C: NotSupported,  # WBEM_E_NOT_SUPPORTED
    0x80041055: NotSupported,  # WBEM_E_METHOD_NOT_IMPLEMENTED
    0x8033801A: CannotProcessFilter,  # ERROR_WSMAN_FILTERING_REQUIRED / filter failed in WMI
    0x8033800F: InvalidHeader,  # ERROR_WSMAN_INVALID_HEADER
}

_SUBCODE_REGISTRY: dict[str, type[WSManFault]] = {
    "InvalidSelectors": InvalidSelectors,
    "TimedOut": OperationTimedOut,
    "AccessDenied": AccessDenied,
    "QuotaLimit": QuotaExceeded,
    "ActionNotSupported": NotSupported,
    "CannotProcessFilter": CannotProcessFilter,
    "InvalidMessageInformationHeader": InvalidHeader,
}


def fault_class_for(codes: list[int], subcode_local_name: str | None) -> type[WSManFault]:
    """Pick the most specific class: innermost code first, then the SOAP subcode, else the base."""
    for code in codes:
        cls = _CODE_REGISTRY.get(code)
        if cls is not None:
            return cls
    if subcode_local_name:
        return _SUBCODE_REGISTRY.get(subcode_local_name, WSManFault)
    return WSManFault


class JobNotCancellable(HvjobError):
    """The job says Cancellable = false, so a stop request is expected to fail; nothing was sent."""

    error_type = "method"


class JobFailed(HvjobError):
    """The waited-on job reached a terminal state other than success, and success was required."""

    error_type = "method"


class WaitTimedOut(HvjobError):
    """The job was still running (read, and not terminal) when the wait's own time limit passed.

    Not a network time-out: every request was answered. The CLI exits 4 for it (docs/cli.md).
    """

    error_type = "wait_timeout"


class Interrupted(HvjobError):
    """The user interrupted (Ctrl-C) and the operation stopped before sending its next request.

    ``OperationResult.requests`` says what had been sent and answered before that.
    """

    error_type = "interrupted"


class InternalError(HvjobError):
    """An exception hvjob did not expect reached a front end: a bug, reported as one (exit 70),
    with its traceback in the debug log rather than passed off as a protocol or network failure."""

    error_type = "internal"
