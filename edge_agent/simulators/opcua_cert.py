"""The simulated OPC-UA server's own certificate, kept in a folder like a PLC keeps its own.

Made on first use (self-signed, RSA 2048) and reused on every start and restart, so an agent
pins it once. Deleting the files and restarting the OPC-UA server (or the simulator) presents a
new certificate, as a replaced PLC does: the agent then refuses the server until someone runs
`edge-agent opcua trust` (docs/opcua.md).
"""

from __future__ import annotations

from pathlib import Path

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

__all__ = ["APPLICATION_URI", "ensure_server_certificate"]

APPLICATION_URI = "urn:millstream:simulator:server"
CERT_FILE = "server-cert.der"
KEY_FILE = "server-key.pem"


def ensure_server_certificate(folder: Path, host: str) -> tuple[Path, Path]:
    """The certificate and key in `folder` (DER, PEM), made now if either is missing."""
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    folder.mkdir(parents=True, exist_ok=True)
    key = cert_gen.generate_private_key()
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(APPLICATION_URI),
        x509.DNSName("localhost"),
    ]
    if host not in ("localhost", "0.0.0.0", "::"):
        names.append(x509.DNSName(host))
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        "Millstream simulated plant",
        {"organizationName": "Millstream"},
        names,
        extended=[ExtendedKeyUsageOID.SERVER_AUTH],
        days=3650,
    )
    # Key first, certificate last: a half-written pair is made again on the next start.
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    return cert_path, key_path
