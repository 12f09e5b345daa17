"""The agent's own OPC-UA application certificate: created once, then kept.

A PLC administrator trusts this exact certificate, so it is never regenerated behind their back
(peers that silently re-create an expired or "invalid" certificate cause certificate loops).
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

__all__ = [
    "AppCertificate",
    "application_uri",
    "ensure_app_certificate",
    "first_certificate",
    "thumbprints",
]

# Ten years: a line PC outlives a one-year certificate, and renewing means re-trusting on every PLC.
_VALIDITY_DAYS = 3650


@dataclass(frozen=True, slots=True)
class AppCertificate:
    """Paths of the agent's certificate (DER) and private key (PEM) and its application URI."""

    cert_path: Path
    key_path: Path
    application_uri: str


def application_uri(hostname: str | None = None) -> str:
    """The agent's OPC-UA application URI; servers match it against the certificate's SAN."""
    return f"urn:millstream:edge-agent:{hostname or socket.gethostname()}"


def thumbprints(der: bytes) -> tuple[str, str]:
    """(SHA-256, SHA-1) thumbprints of a DER certificate, uppercase hex pairs joined by colons."""
    # SHA-1 is what most PLC web UIs display; SHA-256 is what we pin.
    return _hex(hashlib.sha256(der).digest()), _hex(
        hashlib.sha1(der, usedforsecurity=False).digest()
    )


def first_certificate(der: bytes) -> bytes:
    """The leaf certificate of a DER chain (servers may send their whole chain in an endpoint)."""
    # A DER certificate is one SEQUENCE; with a two-byte length (0x82) its size is in bytes 2:4.
    if len(der) > 4 and der[0] == 0x30 and der[1] == 0x82:
        return der[: int.from_bytes(der[2:4], "big") + 4]
    return der


def _hex(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def ensure_app_certificate(state_dir: Path, hostname: str | None = None) -> AppCertificate:
    """Return the agent's certificate under `state_dir/opcua/own`, creating it on first use only."""
    # Imported here: asyncua's import costs ~0.7 s, and `validate` or `cert` on a second run
    # should not pay it just to read thumbprints.
    from asyncua.crypto import cert_gen  # noqa: PLC0415

    own = state_dir / "opcua" / "own"
    cert_path, key_path = own / "cert.der", own / "key.pem"
    host = hostname or socket.gethostname()
    uri = application_uri(host)
    if cert_path.is_file() and key_path.is_file():
        existing = x509.load_der_x509_certificate(cert_path.read_bytes())
        return AppCertificate(cert_path, key_path, _uri_of(existing) or uri)
    own.mkdir(parents=True, exist_ok=True)
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        uri,
        {"organizationName": "Millstream"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName(host)],
        extended=[ExtendedKeyUsageOID.CLIENT_AUTH],
        days=_VALIDITY_DAYS,
    )
    _write_private(key_path, cert_gen.dump_private_key_as_pem(key))
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    return AppCertificate(cert_path, key_path, uri)


def _uri_of(cert: x509.Certificate) -> str | None:
    # The URI in the kept certificate wins over the hostname: a renamed PC keeps its identity.
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
