"""`edge-agent service install | uninstall | show`: run the agent as a hardened systemd service."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.cli.common import load_or_exit
from edge_agent.cli.service_unit import (
    LEGACY_UNIT_NAME,
    UNIT_NAME,
    UnitValues,
    extra_writable,
    hidden_paths,
    render_unit,
)
from edge_agent.runtime import buffer_path, state_dir

__all__ = ["register", "service_app"]

service_app = typer.Typer(
    name="service",
    help=f"""Run the agent as a systemd service on a Linux line PC ({UNIT_NAME}).

The unit restarts the agent forever, runs it as an unprivileged account in a tight sandbox and
gives it /var/lib/millstream for its buffer and state (the config's buffer.path and state_dir
belong there). It is the same unit the offline bundle ships (`service show` prints it).

Examples:

\b
    $ sudo useradd --system --home-dir /var/lib/millstream --shell /usr/sbin/nologin millstream
    $ sudo edge-agent service install /etc/millstream/agent.yaml
    $ journalctl -u millstream-agent -f              # follow its log
    $ edge-agent status /etc/millstream/agent.yaml   # buffer, backlog, devices
    $ sudo edge-agent service uninstall              # buffer and config stay
    $ edge-agent service show /etc/millstream/agent.yaml   # print the unit, change nothing
""",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_UNIT_DIR = Path("/etc/systemd/system")


def _values(config: Path, user: str, metrics_port: int | None) -> UnitValues:
    """The unit's values for this config file (exits with the config's problems if invalid)."""
    loaded = load_or_exit(config)
    folders = [
        str(state_dir(loaded.config, loaded.path)),
        str(buffer_path(loaded.config, loaded.path).parent),
    ]
    # The script next to this Python (/opt/millstream/bin/edge-agent), not a symlink found on PATH.
    beside = Path(sys.executable).with_name("edge-agent")
    exe = str(beside) if beside.exists() else shutil.which("edge-agent") or str(beside)
    return UnitValues(
        exe=exe,
        config=str(config.resolve()),
        user=user,
        metrics_port=metrics_port,
        read_write=extra_writable(folders),
    )


def _systemctl(*args: str) -> None:
    subprocess.run(["systemctl", *args], check=True)


def _account_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def _problems(values: UnitValues) -> list[str]:
    """Why the service would fail to start with these values; each says what to do instead."""
    problems = [
        f"{path} is hidden from the service (ProtectHome=yes, PrivateTmp=yes): move it, e.g. "
        "the config to /etc/millstream/agent.yaml and buffer.path/state_dir to "
        "/var/lib/millstream/"
        for path in hidden_paths([values.exe, values.config, *values.read_write])
    ]
    if not _account_exists(values.user):
        problems.append(
            f"account {values.user!r} does not exist: sudo useradd --system --home-dir "
            f"/var/lib/millstream --shell /usr/sbin/nologin {values.user}"
        )
    return problems


def _prepare_folders(values: UnitValues) -> None:
    # ReadWritePaths= needs the folders to exist, and the agent's account must own them; the
    # StateDirectory itself is created and owned by systemd.
    for folder in values.read_write:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and _account_exists(values.user):
            shutil.chown(path, values.user)


UserOption = Annotated[str, typer.Option(help="Account the agent runs as (it must exist).")]
MetricsOption = Annotated[
    int | None, typer.Option(help="Serve Prometheus metrics on 127.0.0.1:PORT.")
]
UnitDirOption = Annotated[Path, typer.Option(help="Where unit files live.")]


@service_app.command("install")
def install(
    config: Annotated[
        Path, typer.Argument(help="Agent config file, e.g. /etc/millstream/agent.yaml.")
    ],
    user: UserOption = "millstream",
    metrics_port: MetricsOption = None,
    unit_dir: UnitDirOption = _UNIT_DIR,
    systemctl: Annotated[
        bool, typer.Option(help="Run systemctl daemon-reload and enable --now afterwards.")
    ] = True,
) -> None:
    """Write /etc/systemd/system/millstream-agent.service for CONFIG, then enable and start it.

    The unit runs `edge-agent run CONFIG` as USER, restarts it whatever happens and starts it at
    boot. The agent may write only /var/lib/millstream and the buffer and state folders CONFIG
    names (created if missing); keep those under /var/lib/millstream. Afterwards: `journalctl
    -u millstream-agent -f` shows its log, `edge-agent status CONFIG` its buffer and devices,
    `systemctl restart millstream-agent` applies a changed config. With --no-systemctl it only
    writes the file; then run `systemctl daemon-reload && systemctl enable --now
    millstream-agent` yourself.
    """
    values = _values(config, user, metrics_port)
    problems = _problems(values)
    if systemctl:
        if shutil.which("systemctl") is None:
            problems.append("systemctl not found: this command needs a Linux PC with systemd")
        if problems:
            for problem in problems:
                typer.echo(f"error: {problem}", err=True)
            typer.echo("nothing was installed", err=True)
            raise typer.Exit(1)
    for problem in problems:
        typer.echo(f"warning: {problem}", err=True)

    unit = unit_dir / UNIT_NAME
    unit_dir.mkdir(parents=True, exist_ok=True)
    unit.write_text(render_unit(values))
    typer.echo(f"wrote {unit}")
    _prepare_folders(values)

    legacy = unit_dir / LEGACY_UNIT_NAME
    if legacy.exists():
        # An older install under the old name would poll the same devices a second time.
        if systemctl:
            _systemctl("disable", "--now", LEGACY_UNIT_NAME)
            legacy.unlink()
            typer.echo(f"stopped and removed the older {legacy}")
        else:
            typer.echo(
                f"warning: {legacy} (the older name) is also there; remove it: systemctl "
                f"disable --now {LEGACY_UNIT_NAME} && rm {legacy}",
                err=True,
            )

    if systemctl:
        _systemctl("daemon-reload")
        _systemctl("enable", "--now", UNIT_NAME)
        typer.echo(
            f"started, and starts at boot. Log: journalctl -u {UNIT_NAME} -f   "
            f"State: edge-agent status {values.config}"
        )
    else:
        typer.echo(
            f"not started; run: systemctl daemon-reload && systemctl enable --now {UNIT_NAME}"
        )


@service_app.command("uninstall")
def uninstall(
    unit_dir: UnitDirOption = _UNIT_DIR,
    systemctl: Annotated[bool, typer.Option(help="Stop and disable the unit first.")] = True,
) -> None:
    """Stop, disable and remove the unit (the buffer, state and config stay)."""
    if systemctl and shutil.which("systemctl") is None:
        typer.echo(
            "error: systemctl not found: this command needs a Linux PC with systemd", err=True
        )
        raise typer.Exit(1)
    for name in (UNIT_NAME, LEGACY_UNIT_NAME):
        unit = unit_dir / name
        if not unit.exists():
            continue
        if systemctl:
            _systemctl("disable", "--now", name)
        unit.unlink()
        typer.echo(f"removed {unit}")
    if systemctl:
        _systemctl("daemon-reload")


@service_app.command("show")
def show(
    config: Annotated[
        Path | None,
        typer.Argument(help="Agent config file; without it, the unit the offline bundle ships."),
    ] = None,
    user: UserOption = "millstream",
    metrics_port: MetricsOption = None,
) -> None:
    """Print the unit `service install` would write for CONFIG, and change nothing."""
    if config is None:
        typer.echo(render_unit(UnitValues(user=user, metrics_port=metrics_port)), nl=False)
        return
    typer.echo(render_unit(_values(config, user, metrics_port)), nl=False)


def register(app: typer.Typer) -> None:
    """Add the `service` command group to the CLI."""
    app.add_typer(service_app)
