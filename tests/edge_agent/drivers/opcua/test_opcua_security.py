"""Security modes, user login and certificate trust against real asyncua servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.common.utils import ServiceError
from opcua_harness import CncServer, endpoint, free_port, make_server_cert

from edge_agent.drivers.opcua import (
    AuthenticationFailed,
    ClientCertificateRejected,
    OpcuaPoint,
    OpcuaSession,
    ServerCertificateChanged,
    SessionOptions,
)
from edge_agent.drivers.opcua.certs import ensure_app_certificate, thumbprints
from edge_agent.drivers.opcua.trust import PinStore
from edge_agent.errors import DeviceUnavailable

SPEED = [OpcuaPoint("spindle_speed", browse_path="/Objects/2:Machine/2:Spindle/2:Speed")]


async def read_speed(server: CncServer, options: SessionOptions, security: str, **kw: Any) -> Any:
    async with OpcuaSession("mill-01", endpoint(server, security, **kw), SPEED, options) as s:
        [sample] = await s.read()
    return sample.value


@pytest.mark.parametrize(
    "security",
    [
        "None",
        "Sign/Basic256Sha256",
        "SignAndEncrypt/Basic256Sha256",
        "Sign/Aes128_Sha256_RsaOaep",
        "SignAndEncrypt/Aes128_Sha256_RsaOaep",
    ],
)
async def test_every_security_mode_reads_values(
    cnc: CncServer, options: SessionOptions, security: str
) -> None:
    assert await read_speed(cnc, options, security) == 1200.0
    pinned = PinStore(options.state_dir).pinned("mill-01")
    if security == "None":
        assert pinned is None
    else:
        assert pinned == thumbprints(cnc.cert[0].read_bytes())[0]


async def test_missing_policy_names_what_the_server_offers(
    server_cert: tuple[Path, Path], options: SessionOptions
) -> None:
    server = CncServer(
        free_port(), server_cert, policies=[ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
    )
    await server.start()
    try:
        with pytest.raises(DeviceUnavailable, match="offers SignAndEncrypt/Basic256Sha256"):
            await read_speed(server, options, "Sign/Aes128_Sha256_RsaOaep")
    finally:
        await server.stop()


async def test_username_login_and_wrong_password(
    server_cert: tuple[Path, Path], options: SessionOptions
) -> None:
    server = CncServer(free_port(), server_cert, users={"op": "s3cret"})
    await server.start()
    try:
        secure = "SignAndEncrypt/Basic256Sha256"
        assert await read_speed(server, options, secure, username="op", password="s3cret") == 1200.0
        with pytest.raises(AuthenticationFailed) as caught:
            await read_speed(server, options, secure, username="op", password="wrong")
        assert "server refused user 'op'" in str(caught.value)
        assert "password_env" in str(caught.value)
    finally:
        await server.stop()


async def test_changed_server_certificate_is_refused_until_trusted(
    tmp_path: Path, options: SessionOptions
) -> None:
    port = free_port()
    first = CncServer(port, make_server_cert(tmp_path / "pki", "old"))
    await first.start()
    try:
        assert await read_speed(first, options, "SignAndEncrypt/Basic256Sha256") == 1200.0
    finally:
        await first.stop()

    # Same PLC address, new certificate: a man in the middle looks exactly like this.
    replaced = CncServer(port, make_server_cert(tmp_path / "pki", "new"))
    await replaced.start()
    try:
        with pytest.raises(ServerCertificateChanged) as caught:
            await read_speed(replaced, options, "SignAndEncrypt/Basic256Sha256")
        message = str(caught.value)
        new_sha256 = thumbprints(replaced.cert[0].read_bytes())[0]
        assert new_sha256 in message
        assert "edge-agent opcua trust --device mill-01" in message
        # What `edge-agent opcua trust` does after showing the thumbprint to the technician:
        PinStore(options.state_dir).pin("mill-01", replaced.cert[0].read_bytes(), replaced.url)
        assert await read_speed(replaced, options, "SignAndEncrypt/Basic256Sha256") == 1200.0
    finally:
        await replaced.stop()


async def test_server_that_does_not_trust_the_agent_says_so(
    server_cert: tuple[Path, Path], options: SessionOptions
) -> None:
    async def reject(_cert: Any, _app: Any) -> None:
        raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    server = CncServer(free_port(), server_cert, validator=reject)
    await server.start()
    try:
        with pytest.raises(ClientCertificateRejected, match="edge-agent opcua cert"):
            await read_speed(server, options, "SignAndEncrypt/Basic256Sha256")
    finally:
        await server.stop()


def test_agent_certificate_is_created_once_and_kept(tmp_path: Path) -> None:
    first = ensure_app_certificate(tmp_path)
    der = first.cert_path.read_bytes()
    again = ensure_app_certificate(tmp_path, hostname="renamed-pc")
    assert again.cert_path.read_bytes() == der
    assert again.application_uri == first.application_uri
    assert (first.key_path.stat().st_mode & 0o777) == 0o600
