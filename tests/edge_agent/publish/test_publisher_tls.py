"""TLS with a client certificate and username/password against a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mqtt_harness import JsonContract, eventually, free_port

from edge_agent.buffer import Bounds, Buffer, Reading
from edge_agent.publish import Publisher, PublisherSettings


def _cert(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    crt, pem = path.with_suffix(".crt"), path.with_suffix(".key")
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return crt, pem


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    # Mosquitto started as root drops to its own user, which cannot enter pytest's 0700 tmp
    # folders; the throwaway PKI goes to a folder it may read.
    pki = Path(tempfile.mkdtemp(prefix="ms-tls-"))
    pki.chmod(0o755)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test-ca", ca_key, None, ca=True)
    ca_crt, _ = _write(pki / "ca", ca, ca_key)
    for name in ("server", "agent"):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(pki / name, _cert(name, key, (ca.subject, ca_key), ca=False), key)
    passwd = pki / "passwd"
    passwd.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "agent-1", "s3cret"], check=True)
    for f in pki.iterdir():
        f.chmod(0o644)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        f"cafile {ca_crt}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
        "require_certificate true\n"
        f"allow_anonymous false\npassword_file {passwd}\n"
        "persistence false\n"
    )
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(0.5)
    yield port, pki
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    shutil.rmtree(pki)


async def publish_through(
    port: int, pki: Path, tmp_path: Path, password: str
) -> tuple[int, Publisher]:
    settings = PublisherSettings(
        host="127.0.0.1",
        port=port,
        client_id="agent-1",
        tls=True,
        ca_file=str(pki / "ca.crt"),
        cert_file=str(pki / "agent.crt"),
        key_file=str(pki / "agent.key"),
        username="agent-1",
        password=password,
        receipts=False,
        reconnect_min=0.1,
        reconnect_max=0.3,
    )
    contract = JsonContract("agent-1")
    async with Buffer(
        tmp_path / "b.db", bounds=Bounds(max_age=None), encoder=contract.encode_batch
    ) as buf:
        pub = Publisher(settings, buf, contract)
        task = asyncio.create_task(pub.run())
        buf.append("m1", [Reading("t", i, float(i)) for i in range(100)])

        async def empty() -> bool:
            return (await buf.stats()).readings == 0

        with contextlib.suppress(TimeoutError):
            await eventually(empty, within=5)
        left = (await buf.stats()).readings
        pub.stop()
        await task
    return left, pub


async def test_tls_client_cert_and_password(tls_broker: tuple[int, Path], tmp_path: Path) -> None:
    port, pki = tls_broker
    left, pub = await publish_through(port, pki, tmp_path, "s3cret")
    assert left == 0
    assert pub.stats.published_readings == 100


async def test_wrong_password_keeps_readings_and_says_why(
    tls_broker: tuple[int, Path], tmp_path: Path
) -> None:
    port, pki = tls_broker
    left, pub = await publish_through(port, pki, tmp_path, "wrong")
    assert left == 100
    assert "connect failed" in pub.stats.last_error
