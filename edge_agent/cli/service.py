"""`edge-agent service install | uninstall`: run the agent as a hardened systemd service."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.cli.opcua import load_or_exit
from edge_agent.runtime import buffer_path, state_dir

__all__ = ["register", "render_unit", "service_app"]

service_app = typer.Typer(
    name="service",
    help="""Install or remove the systemd service (Linux line PCs).

Examples:

\b
    $ sudo edge-agent service install /etc/millstream/agent.yaml --user millstream
    $ sudo edge-agent service uninstall
    $ edge-agent service install agent.yaml --unit-dir ./out --no-systemctl   # just write it
""",
    no_args_is_help=True,
    rich_markup_mode=None,
)

UNIT = "edge-agent.service"


def render_unit(
    *,
    exe: str,
    config: Path,
    user: str,
    writable: list[Path],
    serial: bool,
    metrics_port: int | None,
) -> str:
    """The unit file text: restart forever, stop with SIGTERM, and a tight sandbox."""
    metrics = f" --metrics-port {metrics_port}" if metrics_port else ""
    rw = " ".join(sorted({str(p) for p in writable}))
    lines = [
        "[Unit]",
        "Description=Millstream edge agent (machines → buffer → MQTT)",
        "Wants=network-online.target",
        "After=network-online.target",
        # Never give up: the broker or a PLC may be down for hours; the agent buffers meanwhile.
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=simple",
        f"User={user}",
        f"ExecStart={exe} run {config}{metrics}",
        "Restart=always",
        "RestartSec=5",
        # The agent commits and says `offline` within 5 s of SIGTERM; allow margin before SIGKILL.
        "KillSignal=SIGTERM",
        "TimeoutStopSec=15",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ReadWritePaths={rw}",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "UMask=0077",
    ]
    if serial:
        # Modbus RTU: serial ports are reached through the dialout group, not as root.
        lines += [
            "SupplementaryGroups=dialout",
            "DeviceAllow=char-ttyS rw",
            "DeviceAllow=char-ttyUSB rw",
        ]
    else:
        lines.append("PrivateDevices=yes")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def _systemctl(*args: str) -> None:
    if shutil.which("systemctl") is None:
        typer.echo("error: systemctl not found; is this a systemd Linux?", err=True)
        raise typer.Exit(1)
    subprocess.run(["systemctl", *args], check=True)


@service_app.command("install")
def install(
    config: Annotated[Path, typer.Argument(help="Agent config file (an absolute path is best).")],
    user: Annotated[str, typer.Option(help="Account the agent runs as.")] = "millstream",
    unit_dir: Annotated[Path, typer.Option(help="Where unit files live.")] = Path(
        "/etc/systemd/system"
    ),
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve metrics on 127.0.0.1:PORT.")
    ] = None,
    systemctl: Annotated[bool, typer.Option(help="Run daemon-reload and enable --now.")] = True,
) -> None:
    """Write the unit, then enable and start it."""
    loaded = load_or_exit(config)
    config = config.resolve()
    exe = shutil.which("edge-agent") or str(Path(sys.executable).with_name("edge-agent"))
    writable = [
        state_dir(loaded.config, loaded.path),
        buffer_path(loaded.config, loaded.path).parent,
    ]
    serial = any(d.device.modbus is not None and d.device.modbus.serial for d in loaded.devices)
    unit = unit_dir / UNIT
    unit_dir.mkdir(parents=True, exist_ok=True)
    unit.write_text(
        render_unit(
            exe=exe,
            config=config,
            user=user,
            writable=writable,
            serial=serial,
            metrics_port=metrics_port,
        )
    )
    typer.echo(f"wrote {unit}")
    for path in writable:
        path.mkdir(parents=True, exist_ok=True)
    if systemctl:
        _systemctl("daemon-reload")
        _systemctl("enable", "--now", UNIT)
        typer.echo(f"started; check with: edge-agent status {config}  or  journalctl -u {UNIT}")
    else:
        typer.echo(f"not started; run: systemctl daemon-reload && systemctl enable --now {UNIT}")


@service_app.command("uninstall")
def uninstall(
    unit_dir: Annotated[Path, typer.Option(help="Where unit files live.")] = Path(
        "/etc/systemd/system"
    ),
    systemctl: Annotated[bool, typer.Option(help="Stop and disable the unit first.")] = True,
) -> None:
    """Stop, disable and remove the unit (the buffer and config stay)."""
    unit = unit_dir / UNIT
    if systemctl:
        _systemctl("disable", "--now", UNIT)
    if unit.exists():
        unit.unlink()
        typer.echo(f"removed {unit}")
    if systemctl:
        _systemctl("daemon-reload")


def register(app: typer.Typer) -> None:
    """Add the `service` command group to the CLI."""
    app.add_typer(service_app)
