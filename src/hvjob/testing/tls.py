"""A throw-away certificate authority and server certificate for the fake server's HTTPS.

Generated with ``cryptography`` (already required by pyspnego) for each test run or ``hvjob serve
--https`` start; nothing is written outside the directory the caller gives.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The Microsoft UPN otherName in a certificate's subjectAltName; WinRM maps client certificates by it.
UPN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")


@dataclass(frozen=True)
class TestPKI:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    ca_key: Path | None = None

    def issue_client_cert(self, upn: str, directory: Path | None = None) -> tuple[Path, Path]:
        """A client-authentication certificate for ``upn`` (in the SAN, as WinRM's mapping wants).

        Returns the certificate and key PEM paths, for ``cert_pem`` and ``cert_key_pem``.
        """
        if self.ca_key is None:
            raise ValueError("this PKI was made without keeping its CA key")
        directory = directory or self.ca_cert.parent
        ca = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        upn_der = b"\x0c" + _der_length(len(upn.encode())) + upn.encode()  # UTF8String
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(upn.partition("@")[0]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.OtherName(UPN_OID, upn_der)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        stem = upn.replace("@", "_at_")
        cert_path, key_path = directory / f"client-{stem}.pem", directory / f"client-{stem}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
        return cert_path, key_path

    def server_context(self, *, client_ca: Path | None = None) -> ssl.SSLContext:
        """A server-side SSLContext; with ``client_ca``, client certificates are requested."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert, self.server_key)
        if client_ca is not None:
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(client_ca)
        context.hvjob_cert_path = str(self.server_cert)  # type: ignore[attr-defined]
        return context


def client_identities(der: bytes) -> list[str]:
    """UPNs and e-mail names in a client certificate's subjectAltName, the names WinRM maps."""
    cert = x509.load_der_x509_certificate(der)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names = list(sans.get_values_for_type(x509.RFC822Name))
    for other in sans.get_values_for_type(x509.OtherName):
        value = other.value
        if other.type_id == UPN_OID and len(value) > 2 and value[0] == 0x0C:
            start = 2 if value[1] < 0x80 else 2 + (value[1] & 0x7F)
            names.append(value[start:].decode("utf-8", "replace"))
    return names


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def make_pki(directory: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1"), prefix: str = "") -> TestPKI:
    """Create ``ca.pem``, ``server.pem`` and ``server-key.pem`` in ``directory`` for ``names``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("hvjob test CA"))
        .issuer_name(_name("hvjob test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = TestPKI(
        directory / f"{prefix}ca.pem",
        directory / f"{prefix}server.pem",
        directory / f"{prefix}server-key.pem",
        directory / f"{prefix}ca-key.pem",
    )
    assert paths.ca_key is not None
    _write_key(ca_key, paths.ca_key)
    paths.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, paths.server_key)
    return paths
