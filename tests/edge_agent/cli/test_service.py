"""`edge-agent service install | uninstall | show` against real files and systemd-analyze."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from edge_agent.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "packaging" / "systemd" / "millstream-agent.service"


def make_config(folder: Path, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "agent.yaml"
    cfg.write_text(
        "agent: {id: line3-pc, site: plant-a, line: line-3}\n"
        "mqtt: {url: 'mqtt://127.0.0.1:1883'}\n"
        f"{extra}"
        "devices:\n"
        "  - {machine: meter-01, profile: eastron-sdm630, modbus: {host: 127.0.0.1, port: 5020}}\n"
    )
    result = runner.invoke(app, ["validate", str(cfg)])
    assert result.exit_code == 0, result.output
    return cfg


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def verify(unit: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: run scripts/services install"
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_install_writes_the_unit_show_prints(tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "conf")
    units = tmp_path / "units"
    args = ["--metrics-port", "9108", "--user", "plc-reader"]
    result = runner.invoke(
        app, ["service", "install", str(cfg), "--unit-dir", str(units), "--no-systemctl", *args]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {units / 'millstream-agent.service'}" in result.output
    assert "systemctl daemon-reload && systemctl enable --now millstream-agent" in result.output
    # A config under /tmp works for this test but not for the sandboxed service: it says so.
    assert "hidden from the service" in result.output
    assert "useradd --system" in result.output  # no account plc-reader on this machine

    unit = units / "millstream-agent.service"
    text = unit.read_text()
    shown = runner.invoke(app, ["service", "show", str(cfg), *args])
    assert shown.exit_code == 0, shown.output
    assert shown.output == text

    d = directives(text)
    (exec_start,) = d["ExecStart"]
    assert exec_start.endswith(f"edge-agent run {cfg.resolve()} --metrics-port 9108")
    assert d["User"] == ["plc-reader"]
    assert d["StateDirectory"] == ["millstream"]
    # buffer.db and state/ default to the config's folder: outside StateDirectory, so writable.
    assert d["ReadWritePaths"] == [str((tmp_path / "conf").resolve())]
    assert (tmp_path / "conf").is_dir()
    verify(unit)


def test_unit_for_a_config_in_place_differs_from_the_shipped_one_only_in_exec_start(
    tmp_path: Path,
) -> None:
    cfg = make_config(
        tmp_path / "etc millstream",  # a space, to prove ExecStart= quotes its arguments
        "buffer: {path: /var/lib/millstream/buffer.db}\nstate_dir: /var/lib/millstream/state\n",
    )
    shown = runner.invoke(app, ["service", "show", str(cfg)])
    assert shown.exit_code == 0, shown.output
    ours, shipped = shown.output.splitlines(), SHIPPED.read_text().splitlines()
    assert len(ours) == len(shipped)
    differing = [(a, b) for a, b in zip(ours, shipped, strict=True) if a != b]
    assert len(differing) == 1
    line, shipped_line = differing[0]
    assert shipped_line == "ExecStart=/opt/millstream/bin/edge-agent run /etc/millstream/agent.yaml"
    assert line.endswith(f' run "{cfg.resolve()}"')
    assert "ReadWritePaths" not in directives(shown.output)
    unit = tmp_path / "millstream-agent.service"
    unit.write_text(shown.output)
    verify(unit)


def test_install_refuses_what_would_never_start(tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "conf")
    units = tmp_path / "units"
    result = runner.invoke(
        app, ["service", "install", str(cfg), "--unit-dir", str(units), "--user", "plc-reader"]
    )
    assert result.exit_code == 1
    assert f"error: {cfg.resolve()} is hidden from the service" in result.output
    assert "/etc/millstream/agent.yaml" in result.output
    assert "error: account 'plc-reader' does not exist: sudo useradd --system" in result.output
    assert "nothing was installed" in result.output
    assert not units.exists()


def test_uninstall_removes_the_unit_and_the_older_name(tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "conf")
    units = tmp_path / "units"
    units.mkdir()
    legacy = units / "edge-agent.service"
    legacy.write_text("[Service]\nExecStart=/bin/true\n")
    result = runner.invoke(
        app, ["service", "install", str(cfg), "--unit-dir", str(units), "--no-systemctl"]
    )
    assert result.exit_code == 0, result.output
    assert f"{legacy} (the older name) is also there" in result.output

    removed = runner.invoke(
        app, ["service", "uninstall", "--unit-dir", str(units), "--no-systemctl"]
    )
    assert removed.exit_code == 0, removed.output
    assert sorted(units.iterdir()) == []
    assert cfg.exists()


def test_help_says_where_it_writes_and_how_to_read_logs() -> None:
    result = runner.invoke(app, ["service", "install", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "/etc/systemd/system/millstream-agent.service" in text
    assert "journalctl -u millstream-agent -f" in text
    assert "systemctl enable --now millstream-agent" in text
