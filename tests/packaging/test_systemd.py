"""packaging/systemd: valid units, hardened, in step with `edge-agent service install`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.cli.service import render_unit

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "packaging" / "systemd"
BIN = Path(sys.executable).parent  # the venv's edge-agent and millstream-hub stand in for /opt

REQUIRED = {
    "Restart": "always",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter": "@system-service",
}


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.parametrize("name", ["millstream-agent.service", "millstream-hub.service"])
def test_unit_is_valid_for_systemd(name: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    text = (UNITS / name).read_text().replace("/opt/millstream/bin", str(BIN))
    unit = tmp_path / name
    unit.write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False, timeout=60
    )
    # Unknown keys and bad values are only warnings for systemd: any output is a finding.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@pytest.mark.parametrize("name", ["millstream-agent.service", "millstream-hub.service"])
def test_unit_is_hardened(name: str) -> None:
    d = _directives((UNITS / name).read_text())
    for key, value in REQUIRED.items():
        assert d.get(key) == [value], key
    assert d["StateDirectory"]
    assert d.get("User") or d.get("DynamicUser") == ["yes"]


def test_agent_unit_can_reach_serial_ports() -> None:
    d = _directives((UNITS / "millstream-agent.service").read_text())
    assert d["SupplementaryGroups"] == ["dialout"]
    assert "PrivateDevices" not in d  # it would hide /dev/ttyUSB*
    assert {"char-ttyS rw", "char-ttyUSB rw"} <= set(d["DeviceAllow"])
    assert d["ExecStart"] == ["/opt/millstream/bin/edge-agent run /etc/millstream/agent.yaml"]


def test_hub_unit_migrates_before_serving() -> None:
    d = _directives((UNITS / "millstream-hub.service").read_text())
    assert d["ExecStartPre"] == ["/opt/millstream/bin/millstream-hub migrate"]
    assert d["ExecStart"] == ["/opt/millstream/bin/millstream-hub serve"]


def test_agent_unit_agrees_with_service_install() -> None:
    # `edge-agent service install` renders its own unit from a config file. The shipped unit keeps
    # every protection the generated one has; the documented differences are the identity, the
    # paths (StateDirectory here instead of ReadWritePaths there) and the umask (group-readable
    # here, so technicians in group millstream can run `edge-agent status`).
    generated = _directives(
        render_unit(
            exe="/opt/millstream/bin/edge-agent",
            config=Path("/etc/millstream/agent.yaml"),
            user="millstream",
            writable=[Path("/var/lib/millstream")],
            serial=True,
            metrics_port=None,
        )
    )
    shipped = _directives((UNITS / "millstream-agent.service").read_text())
    for key, values in generated.items():
        if key in {"ReadWritePaths", "UMask"}:
            continue
        assert key in shipped, f"{key} is in the generated unit but not in the shipped one"
        assert set(values) <= set(shipped[key]), key
