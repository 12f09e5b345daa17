"""`edge-agent opcua cert|trust` and `edge-agent browse` against a real asyncua server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import yaml
from opcua_harness import CncServer, make_server_cert
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.config import OpcUaProfile, load_profile
from edge_agent.drivers.opcua import (
    OpcuaEndpoint,
    OpcuaSession,
    ServerCertificateChanged,
    SessionOptions,
)
from edge_agent.drivers.opcua.certs import thumbprints
from edge_agent.drivers.opcua.trust import PinStore

PROFILE = {
    "profile": "test-cnc",
    "vendor": "Test",
    "model": "CNC",
    "protocol": "opcua",
    "source": "test server in opcua_harness.py",
    "tags": [
        {"name": "spindle_speed", "browse_path": "/Objects/2:Machine/2:Spindle/2:Speed"},
        {"name": "state", "node": "ns=2;s=Machine.State", "mode": "poll"},
    ],
}


def write_config(tmp_path: Path, server: CncServer, security: str = "None") -> Path:
    (tmp_path / "test-cnc.yaml").write_text(yaml.safe_dump(PROFILE))
    config = {
        "agent": {"id": "line3-pc", "site": "plant-a", "line": "line-3"},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "state_dir": "state",
        "devices": [
            {
                "machine": "mill-01",
                "profile": str(tmp_path / "test-cnc.yaml"),
                "opcua": {"url": server.url, "security": security},
            }
        ],
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
    # The CLI runs its own event loop; a thread keeps the server's loop (this test's) serving.
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), input=stdin)
    return result.exit_code, result.output


async def test_cert_prints_path_and_thumbprints_and_keeps_the_certificate(tmp_path: Path) -> None:
    code, out = await invoke("opcua", "cert", "--state-dir", str(tmp_path))
    assert code == 0, out
    der = (tmp_path / "opcua" / "own" / "cert.der").read_bytes()
    sha256, sha1 = thumbprints(der)
    assert sha256 in out
    assert sha1 in out
    assert str((tmp_path / "opcua" / "own" / "cert.der").resolve()) in out
    _, again = await invoke("opcua", "cert", "--state-dir", str(tmp_path))
    assert sha256 in again


async def test_trust_accepts_a_changed_server_certificate(tmp_path: Path, cnc: CncServer) -> None:
    config = write_config(tmp_path, cnc, "SignAndEncrypt/Basic256Sha256")
    state = tmp_path / "state"
    # Pinned: some other certificate, as if the PLC had been replaced since.
    old_der = make_server_cert(tmp_path / "old", "old")[0].read_bytes()
    PinStore(state).pin("mill-01", old_der, cnc.url)
    options = SessionOptions(state_dir=state)
    endpoint_session = OpcuaSession("mill-01", _endpoint(cnc), (), options)
    try:
        await endpoint_session.open()
    except ServerCertificateChanged:
        pass
    else:
        raise AssertionError("a changed certificate must be refused")

    code, out = await invoke("opcua", "trust", "--device", "mill-01", str(config), stdin="n\n")
    assert code == 1
    assert "not trusted" in out
    code, out = await invoke("opcua", "trust", "--device", "mill-01", str(config), "--yes")
    assert code == 0, out
    new_sha256 = thumbprints(cnc.cert[0].read_bytes())[0]
    assert new_sha256 in out
    assert PinStore(state).pinned("mill-01") == new_sha256
    async with OpcuaSession("mill-01", _endpoint(cnc), (), options):
        pass


def _endpoint(server: CncServer) -> OpcuaEndpoint:
    return OpcuaEndpoint(server.url, "SignAndEncrypt/Basic256Sha256")


async def test_browse_shows_tree_and_writes_a_valid_profile(tmp_path: Path, cnc: CncServer) -> None:
    config = write_config(tmp_path, cnc)
    out_file = tmp_path / "browsed-cnc.yaml"
    code, out = await invoke(
        "browse",
        str(config),
        "--device",
        "mill-01",
        "--path",
        "/Objects/2:Machine",
        "--depth",
        "2",
        "--profile-out",
        str(out_file),
    )
    assert code == 0, out
    assert "2:Spindle  <Object>" in out
    assert "2:Speed  [Double] = 1200.0  (ns=2;s=Spindle.Speed)" in out
    assert "2:State  [String] = 'RUN'" in out
    profile, problems = load_profile(out_file)
    assert problems == []
    assert isinstance(profile, OpcUaProfile)
    tags = {t.name: t.browse_path for t in profile.tags}
    assert tags["spindle_speed"] == "/Objects/2:Machine/2:Spindle/2:Speed"
    assert tags["dooropen"] == "/Objects/2:Machine/2:DoorOpen"


async def test_browse_unknown_device_lists_the_devices(tmp_path: Path, cnc: CncServer) -> None:
    config = write_config(tmp_path, cnc)
    code, out = await invoke("browse", str(config), "--device", "nope")
    assert code == 1
    assert "devices in this config: mill-01" in out


async def test_probe_json_reads_every_tag_of_an_opcua_device(
    tmp_path: Path, cnc: CncServer
) -> None:
    config = write_config(tmp_path, cnc)
    code, out = await invoke("probe", str(config), "--device", "mill-01", "--json")
    assert code == 0, out
    rows = json.loads(out)
    assert rows == [
        {"tag": "spindle_speed", "value": 1200.0, "quality": "good", "raw": "ns=2;s=Spindle.Speed"},
        {"tag": "state", "value": "RUN", "quality": "good", "raw": "ns=2;s=Machine.State"},
    ]
    code, table = await invoke("probe", str(config), "--device", "mill-01")
    assert code == 0, table
    assert "spindle_speed" in table
    assert "1200.0" in table


async def test_validate_names_the_allowed_security_strings(tmp_path: Path, cnc: CncServer) -> None:
    config = write_config(tmp_path, cnc, "Encrypt/Basic128Rsa15")
    code, out = await invoke("validate", str(config))
    assert code == 1
    assert "unknown security 'Encrypt/Basic128Rsa15'" in out
    assert "SignAndEncrypt/Aes128_Sha256_RsaOaep" in out


async def test_probe_of_an_unreachable_server_fails_clearly(tmp_path: Path, cnc: CncServer) -> None:
    config = write_config(tmp_path, cnc)
    await cnc.stop()  # nothing listens on the port any more
    code, out = await invoke("probe", str(config), "--device", "mill-01")
    assert code == 1
    assert out.startswith("error: mill-01: connection refused: is the OPC-UA server running")
