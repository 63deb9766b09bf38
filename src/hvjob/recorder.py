"""Record live exchanges (after decryption) as scenario fixtures, scrubbed for committing.

Scrubbing replaces what is known to name the estate, and leaves every other value as it was
(paths, namespaces, resource URIs, messages), because a pattern such as ``WORD\\WORD`` cannot
tell ``CONTOSO\\backup-svc`` from ``Backup\\VMGroup1`` or ``root\\virtualization``:

- hosts: the target (its name, short name and DNS domain), every ``Machine=`` attribute, and the
  values of host-naming properties (``CSName``, ``SystemName``, ``DNSHostName``, the ``Name`` of an
  ``MSCluster_Node``, ...), as whole names wherever they appear, never inside a longer name;
- the user hvjob authenticates as, and its domain, as whole names wherever they appear;
- account-shaped values of account properties (``Owner``, ``Notify``, ``PrimaryOwnerName``, ...) in
  typed instances, ``w:XmlFragment`` items and embedded instances (nested XML, or CIM-XML carried as
  text); the same ``DOMAIN\\user`` or ``user@domain`` is replaced wherever else it appears;
  well-known principals (``NT AUTHORITY\\SYSTEM``, ``LocalSystem``, ...) are kept;
- account SIDs (``S-1-5-21-...``) and the content of credential-like elements (``Password``,
  ``Secret``, ``Token``, ``Credential``).

The same name always gets the same placeholder within one recording (``HOST1``, ``DOMAIN1``,
``user1``). Names hvjob cannot know (a user mentioned only in a message) stay: read a recording
before committing it. See docs/fixtures.md.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from hvjob import __version__
from hvjob.errors import HvjobError, ProtocolError
from hvjob.scenario import RequestPattern, describe_request, dump_scenario
from hvjob.wire.build import WsmanRequest
from hvjob.wire.parse import IdentifyResult, parse_response
from hvjob.wire.xmlsafe import DEFAULT_MAX_BYTES, local, parse_xml

#: Properties whose values are accounts (CIM_Job, Win32_OperatingSystem, Win32_ComputerSystem,
#: Win32_Service, ...); compared case-insensitively, as WMI compares property names.
ACCOUNT_PROPERTIES = frozenset(
    p.lower()
    for p in (
        "Owner",
        "Notify",
        "PrimaryOwnerName",
        "RegisteredUser",
        "UserName",
        "StartName",
        "AccountName",
    )
)
#: Properties whose values name an organisation (replaced like accounts, as ``ORG1``).
ORGANIZATION_PROPERTIES = frozenset(p.lower() for p in ("Organization", "RegisteredOrganization"))
#: Properties whose values are host names.
HOST_PROPERTIES = frozenset(
    p.lower()
    for p in (
        "CSName",
        "SystemName",
        "DNSHostName",
        "ComputerName",
        "MachineName",
        "__SERVER",
        "PSComputerName",
        "OwnerNode",
        "NodeName",
        "Fqdn",
    )
)
#: Properties whose values are domain names.
DOMAIN_PROPERTIES = frozenset(p.lower() for p in ("Domain", "DNSDomain", "UserDomain"))
#: Classes whose ``Name`` is a host name.
HOST_NAMED_CLASSES = frozenset(c.lower() for c in ("MSCluster_Node", "MSCluster_Cluster", "Win32_ComputerSystem"))

_WELL_KNOWN_DOMAINS = frozenset(
    ["nt authority", "builtin", "nt service", "nt virtual machine", "window manager", "font driver host", "iis apppool"]
)
_WELL_KNOWN_ACCOUNTS = frozenset(
    [
        "localsystem",
        "system",
        "localservice",
        "local service",
        "networkservice",
        "network service",
        "everyone",
        "administrator",
        "administrators",
        "guest",
    ]
)

_SID = re.compile(r"(?<![\w-])S-1-5-21(?:-\d+){3,4}(?![\w-])")
_SECRET_NAME = re.compile(r"(?i)password|passwd|passphrase|secret|credential|token")
#: The same, for a body that is not XML (an HTML error page, a truncated reply).
_SECRET_TEXT = re.compile(
    r"(?i)(<(?:[\w.-]+:)?[\w.-]*(?:password|passwd|passphrase|secret|credential|token)[\w.-]*(?:\s[^<>]*)?>)[^<]*(<)"
)
#: CIM-XML (DSP0201) elements that name a property in their NAME attribute.
_CIMXML_PROPERTIES = frozenset(["PROPERTY", "PROPERTY.ARRAY", "PROPERTY.REFERENCE"])
_MAX_NESTING = 4  # embedded instances inside embedded instances, at most


class Scrubber:
    """Learn the names a recording holds, then replace them consistently (module docstring)."""

    def __init__(self, *, hosts: Iterable[str] = (), users: Iterable[str] = ()) -> None:
        self._placeholders: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self._everywhere: dict[str, str] = {}  # lower-cased whole name -> replacement, in any text
        self._account_values: dict[str, str] = {}  # lower-cased account property value -> replacement
        self._pattern: re.Pattern[str] | None = None
        for host in hosts:
            self.learn_host(host)
        for user in users:
            self.learn_user(user)

    # --- learning --------------------------------------------------------------------------

    def _placeholder(self, kind: str, value: str) -> str:
        key = (kind, value.lower())
        if key not in self._placeholders:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            self._placeholders[key] = f"{kind}{self._counts[kind]}"
        return self._placeholders[key]

    def _everywhere_name(self, name: str, replacement: str) -> None:
        if len(name) >= 2 and name.lower() not in self._everywhere:
            self._everywhere[name.lower()] = replacement
            self._pattern = None

    def learn_host(self, name: str) -> str:
        """A host name (or address): replaced, whole, wherever it appears. Returns its placeholder."""
        name = name.strip().rstrip(".")
        if not name:
            return name
        known = self._everywhere.get(name.lower())
        if known is not None:
            return known
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            short, dot, suffix = name.partition(".")
            if dot and short and suffix:
                host = self._placeholder("HOST", short)
                self._everywhere_name(short, host)
                replacement = f"{host}.{self.learn_domain(suffix)}"
                self._everywhere_name(name, replacement)
                return replacement
        replacement = self._placeholder("HOST", name)
        self._everywhere_name(name, replacement)
        return replacement

    def learn_domain(self, name: str) -> str:
        """A NetBIOS or DNS domain name: replaced, whole, wherever it appears."""
        name = name.strip()
        known = self._everywhere.get(name.lower())
        if known is not None or not name:
            return known or name
        replacement = self._placeholder("DOMAIN", name)
        self._everywhere_name(name, replacement)
        return replacement

    def learn_user(self, account: str) -> str:
        """The account hvjob authenticates as (``DOMAIN\\user``, ``user@domain`` or ``user``):
        its user and domain names are replaced, whole, wherever they appear."""
        account = account.strip()
        if not account:
            return account
        domain, user, sep = _split_account(account)
        replacement = self._placeholder("user", user)
        self._everywhere_name(user, replacement)
        if domain and domain != ".":
            scrubbed_domain = self.learn_domain(domain)
            return f"{scrubbed_domain}{sep}{replacement}" if sep == "\\" else f"{replacement}{sep}{scrubbed_domain}"
        return replacement

    def learn_account_value(self, value: str, kind: str = "user") -> None:
        """The value of an account property: replaced there, and as a DOMAIN\\user pair anywhere.

        A bare name (``backup-svc``) is replaced only in account properties: elsewhere the same
        word may be ordinary data (a ``Backup`` folder)."""
        value = value.strip()
        if not value or value.lower() in self._account_values or _SID.fullmatch(value):
            return
        domain, user, sep = _split_account(value) if kind == "user" else ("", value, "")
        if domain.lower() in _WELL_KNOWN_DOMAINS or (not domain and user.lower() in _WELL_KNOWN_ACCOUNTS):
            return
        replacement = self._placeholder(kind, user)
        if domain and domain != ".":
            scrubbed = self._everywhere.get(domain.lower()) or self.learn_domain(domain)
            replacement = f"{scrubbed}\\{replacement}" if sep == "\\" else f"{replacement}@{scrubbed}"
            self._everywhere_name(value, replacement)
        elif domain == ".":
            replacement = f".\\{replacement}"
        self._account_values[value.lower()] = replacement

    def learn(self, root: etree._Element, depth: int = 0) -> None:
        """Collect the host, domain and account names an element tree carries."""
        for element in root.iter(etree.Element):
            for attr, value in element.attrib.items():
                if local(attr) == "Machine" and value:
                    self.learn_host(str(value))
            kind = _property_kind(element)
            if kind is not None:
                for text in _value_texts(element):
                    if kind == "account":
                        self.learn_account_value(text)
                    elif kind == "organization":
                        self.learn_account_value(text, "ORG")
                    elif kind == "host":
                        self.learn_host(text)
                    elif kind == "domain":
                        self.learn_domain(text)
            embedded = _embedded_xml(element.text, depth)
            if embedded is not None:
                self.learn(embedded, depth + 1)

    def learn_body(self, body: bytes) -> None:
        root = _parse(body)
        if root is not None:
            self.learn(root)

    # --- replacing -------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """Replace SIDs and every known name (whole names only) in plain text."""
        if not text:
            return text
        text = _SID.sub(lambda m: self._placeholder("S-1-5-21-REDACTED-", m.group(0)), text)
        pattern = self._names_pattern()
        if pattern is None:
            return text
        # A match whose lower case is not a key (Unicode case folding) is still never left as it was.
        return pattern.sub(lambda m: self._everywhere.get(m.group(0).lower(), "REDACTED"), text)

    def _names_pattern(self) -> re.Pattern[str] | None:
        if self._pattern is None and self._everywhere:
            names = sorted(self._everywhere, key=len, reverse=True)
            alternation = "|".join(re.escape(n) for n in names)
            # Not inside a longer name: no word character, '-' or '.' before; no word character or '-' after.
            self._pattern = re.compile(rf"(?<![\w.-])(?:{alternation})(?![\w-])", re.IGNORECASE)
        return self._pattern

    def scrub_tree(self, element: etree._Element, depth: int = 0) -> None:
        """Scrub an element and everything under it, in place."""
        for attr, value in element.attrib.items():
            element.set(attr, self.scrub(str(value)))
        if element.tail:
            element.tail = self.scrub(element.tail)
        name = _property_name(element)
        if name is not None and _SECRET_NAME.search(name):
            for inner in element.iter(etree.Element):  # structure kept, every text replaced
                if inner.text and inner.text.strip():
                    inner.text = "REDACTED"
                if inner is not element and inner.tail and inner.tail.strip():
                    inner.tail = "REDACTED"
            return
        if _property_kind(element) in ("account", "organization"):
            for inner in element.iter(etree.Element):
                if inner is not element:
                    for attr, value in inner.attrib.items():
                        inner.set(attr, self.scrub(str(value)))
                    if inner.tail:
                        inner.tail = self.scrub(inner.tail)
                if inner.text:
                    inner.text = self._account_values.get(inner.text.strip().lower()) or self.scrub(inner.text)
            return
        embedded = _embedded_xml(element.text, depth)
        if embedded is not None:
            before = etree.tostring(embedded, encoding="unicode")
            self.scrub_tree(embedded, depth + 1)
            after = etree.tostring(embedded, encoding="unicode")
            if after != before:
                element.text = after
        elif element.text:
            element.text = self.scrub(element.text)
        for child in element.iterchildren(etree.Element):
            self.scrub_tree(child, depth)

    def scrub_body(self, body: bytes) -> str:
        """A SOAP body as scrubbed text (XML re-serialised; a body that is not XML, as text)."""
        root = _parse(body)
        if root is None:
            text = body.decode("utf-8", "replace")
            return self.scrub(_SECRET_TEXT.sub(r"\1REDACTED\2", text))
        self.scrub_tree(root)
        return etree.tostring(root, encoding="unicode")


def _split_account(value: str) -> tuple[str, str, str]:
    """(domain, user, separator) of ``DOMAIN\\user``, ``user@domain`` or ``user``."""
    if "\\" in value:
        domain, _, user = value.partition("\\")
        return domain, user, "\\"
    if "@" in value:
        user, _, domain = value.rpartition("@")
        return domain, user, "@"
    return "", value, ""


def _property_name(element: etree._Element) -> str | None:
    name = local(element.tag)
    if name in _CIMXML_PROPERTIES:
        return element.get("NAME")
    return name or None


def _property_kind(element: etree._Element) -> str | None:
    name = (_property_name(element) or "").lower()
    if name in ACCOUNT_PROPERTIES:
        return "account"
    if name in ORGANIZATION_PROPERTIES:
        return "organization"
    if name in HOST_PROPERTIES:
        return "host"
    if name in DOMAIN_PROPERTIES:
        return "domain"
    if name == "name":
        parent = element.getparent()
        owner = parent.get("CLASSNAME") if parent is not None and local(parent.tag) == "INSTANCE" else None
        owner = owner or (local(parent.tag) if parent is not None else "")
        if owner.lower() in HOST_NAMED_CLASSES:
            return "host"
    return None


def _value_holders(element: etree._Element) -> Iterator[etree._Element]:
    """The elements holding a property's value text: itself, or its CIM-XML ``VALUE`` children."""
    if not len(element):
        yield element
        return
    for child in element.iter(etree.Element):
        if child is not element and not len(child):
            yield child


def _value_texts(element: etree._Element) -> Iterator[str]:
    for holder in _value_holders(element):
        if holder.text and holder.text.strip():
            yield holder.text.strip()


def _embedded_xml(text: str | None, depth: int) -> etree._Element | None:
    """An embedded instance carried as escaped XML text (GetError's CIM-XML), parsed; else None."""
    if not text or depth >= _MAX_NESTING:
        return None
    stripped = text.strip()
    if not (stripped.startswith("<") and stripped.endswith(">")):
        return None
    try:
        return parse_xml(stripped.encode("utf-8"))
    except ProtocolError:
        return None


def _parse(body: bytes) -> etree._Element | None:
    try:
        return parse_xml(body, max_bytes=max(DEFAULT_MAX_BYTES, len(body)))
    except ProtocolError:
        return None


@dataclass(frozen=True)
class _Recorded:
    operation: str
    request: RequestPattern
    status: int
    body: bytes


def describe_origin(identity: IdentifyResult | None, when: dt.date) -> str:
    """The ``origin`` of a recording: what is known of where it came from, and nothing more."""
    head = f"recorded by hvjob {__version__} on {when.isoformat()}"
    if identity is None:
        return f"{head}; target not identified; scrubbed"
    said = ", ".join(f'"{v}"' for v in (identity.product_vendor, identity.product_version) if v)
    return f"{head}; target identified itself (WS-Man Identify) as {said or 'nothing'}; scrubbed"


class FixtureRecorder:
    """Pass as ``recorder=`` to a WsmanSession (or ``--record DIR``); call :meth:`save` at the end.

    Exchanges are kept as received and scrubbed when saved, so a name learned late (a
    ``Machine`` attribute in the last reply) is scrubbed in earlier exchanges too. :meth:`save`
    never overwrites another recording: the first save claims ``NAME.yml``, or ``NAME.2.yml``,
    ``NAME.3.yml``, ... when that exists (claimed atomically, so concurrent recorders of one name,
    in threads or processes, get a file each); later saves of the same recorder rewrite its own file.
    """

    def __init__(
        self,
        directory: Path | str,
        name: str,
        *,
        endpoint: str = "",
        username: str | None = None,
        description: str = "",
    ) -> None:
        self.directory = Path(directory)
        self.name = name
        self.description = description or f"recorded {name}"
        host = urlsplit(endpoint).hostname if "://" in endpoint else _host_of(endpoint)
        self._hosts = [host] if host else []
        self._users = [username] if username else []
        self._exchanges: list[_Recorded] = []
        self._identity: IdentifyResult | None = None
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self.path: Path | None = None  #: where :meth:`save` wrote, once it has

    def __repr__(self) -> str:
        return f"FixtureRecorder(name={self.name!r}, path={self.path!r}, exchanges={len(self._exchanges)})"

    def __len__(self) -> int:
        """The number of exchanges recorded so far."""
        with self._lock:
            return len(self._exchanges)

    def __call__(self, request: WsmanRequest, status: int, body: bytes) -> None:
        entry = _Recorded(request.operation, describe_request(request.payload), status, bytes(body))
        identity = _identity_of(request, status, body) if request.operation == "Identify" else None
        with self._lock:
            self._exchanges.append(entry)
            if identity is not None:
                self._identity = identity

    def note_identity(self, identity: IdentifyResult) -> None:
        """Record what the target answered to Identify, for the recording's ``origin``.

        An authenticated Identify sent through the recorded session is noted by itself; this is
        for one sent otherwise (``identify(anonymous=True)`` goes on a connection of its own).
        """
        with self._lock:
            self._identity = identity

    def render(self) -> str:
        """The scrubbed recording as fixture text."""
        with self._lock:
            exchanges = list(self._exchanges)
            identity = self._identity
        scrubber = Scrubber(hosts=self._hosts, users=self._users)
        for recorded in exchanges:  # learn every name first, then replace everywhere
            if recorded.request.body:
                scrubber.learn_body(recorded.request.body.encode("utf-8"))
            scrubber.learn_body(recorded.body)
        today = dt.datetime.now(dt.timezone.utc).date()
        metadata: dict[str, Any] = {"hvjob": __version__, "date": today.isoformat(), "identify": None}
        if identity is not None:
            said = {
                "protocol_version": identity.protocol_version,
                "product_vendor": identity.product_vendor,
                "product_version": identity.product_version,
            }
            metadata["identify"] = {k: scrubber.scrub(v) if v else v for k, v in said.items()}
            identity = IdentifyResult(**metadata["identify"])
        return dump_scenario(
            self.description,
            describe_origin(identity, today),
            [_entry(recorded, scrubber) for recorded in exchanges],
            recorded=metadata,
        )

    def save(self) -> Path:
        """Write the recording and return its path (a new file on the first save; see the class)."""
        with self._save_lock:
            text = self.render()
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.path is None:
                self.path = _write_new(self.directory, self.name, text)
            else:
                _replace(self.path, text)
            return self.path


def _host_of(endpoint: str) -> str:
    if endpoint.startswith("["):
        return endpoint[1:].partition("]")[0]
    return endpoint.split(":", maxsplit=1)[0] if endpoint.count(":") <= 1 else endpoint


def _identity_of(request: WsmanRequest, status: int, body: bytes) -> IdentifyResult | None:
    if status != 200:
        return None
    try:
        reply = parse_response(request, body)
    except HvjobError:
        return None
    return reply if isinstance(reply, IdentifyResult) else None


def _entry(recorded: _Recorded, scrubber: Scrubber) -> dict[str, Any]:
    pattern = recorded.request
    request: dict[str, Any] = {"action": pattern.action, "resource_uri": pattern.resource_uri}
    if pattern.selectors:
        request["selectors"] = {k: scrubber.scrub(v) for k, v in pattern.selectors.items()}
    if recorded.operation in ("Invoke", "Enumerate", "Pull") and pattern.body:
        request["body"] = scrubber.scrub_body(pattern.body.encode("utf-8"))
    return {"request": request, "response": {"status": recorded.status, "body": scrubber.scrub_body(recorded.body)}}


def _write_new(directory: Path, name: str, text: str) -> Path:
    """Create ``name.yml`` (or ``name.N.yml``) exclusively, so no existing file is ever replaced."""
    data = text.encode("utf-8")
    for number in range(1, 100_000):
        path = directory / (f"{name}.yml" if number == 1 else f"{name}.{number}.yml")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path
    raise OSError(f"{directory}: no free file name for recording {name!r}")


def _replace(path: Path, text: str) -> None:
    """Rewrite this recorder's own file atomically (a reader never sees half of it)."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
