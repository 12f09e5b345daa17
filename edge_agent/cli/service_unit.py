"""The agent's systemd unit, rendered from its one template (`millstream-agent.service.in`).

`edge-agent service install` and the shipped `packaging/systemd/millstream-agent.service` both
come from here, so the unit a technician gets is the same whichever way they install it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath

__all__ = [
    "LEGACY_UNIT_NAME",
    "STATE_DIRECTORY",
    "UNIT_NAME",
    "UnitValues",
    "extra_writable",
    "hidden_paths",
    "render_unit",
]

UNIT_NAME = "millstream-agent.service"
# What `service install` called the unit before it shared the template with the shipped one.
LEGACY_UNIT_NAME = "edge-agent.service"
# The unit's StateDirectory=millstream: writable without any ReadWritePaths.
STATE_DIRECTORY = PurePosixPath("/var/lib/millstream")
# ProtectHome=yes and PrivateTmp=yes: the service sees these empty or not at all.
# Only compared against, never written to (hence the S108 exemption).
HIDDEN = tuple(
    PurePosixPath(p)
    for p in ("/home", "/root", "/run/user", "/tmp", "/var/tmp")  # noqa: S108
)

_TEMPLATE = "millstream-agent.service.in"
_MARKER = re.compile(r"@[A-Z_]+@")


@dataclass(frozen=True, slots=True)
class UnitValues:
    """What differs between installations; the defaults give the shipped unit."""

    exe: str = "/opt/millstream/bin/edge-agent"
    config: str = "/etc/millstream/agent.yaml"
    user: str = "millstream"
    metrics_port: int | None = None
    # Folders outside STATE_DIRECTORY the agent writes to (its config put them elsewhere).
    read_write: tuple[str, ...] = ()


def _quote(arg: str) -> str:
    # systemd expands %specifiers and $VARIABLES in ExecStart= and splits on whitespace.
    arg = arg.replace("%", "%%").replace("$", "$$")
    if re.search(r'[\s"\\]', arg):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def _under(path: PurePosixPath, folder: PurePosixPath) -> bool:
    return path == folder or folder in path.parents


def extra_writable(folders: Iterable[str]) -> tuple[str, ...]:
    """The folders that need ReadWritePaths=: those not inside StateDirectory or one another."""
    outside = {PurePosixPath(f) for f in folders if not _under(PurePosixPath(f), STATE_DIRECTORY)}
    return tuple(sorted(str(f) for f in outside if not any(o in f.parents for o in outside)))


def hidden_paths(paths: Iterable[str]) -> list[str]:
    """The paths the sandboxed service cannot reach (home folders, /tmp)."""
    return [p for p in paths if any(_under(PurePosixPath(p), h) for h in HIDDEN)]


def render_unit(values: UnitValues = UnitValues()) -> str:
    """The unit file text for these values."""
    template = resources.files("edge_agent.cli").joinpath(_TEMPLATE).read_text(encoding="utf-8")
    command = [values.exe, "run", values.config]
    if values.metrics_port is not None:
        command += ["--metrics-port", str(values.metrics_port)]
    out: list[str] = []
    for line in template.splitlines():
        if line.startswith("#@"):
            continue  # notes about the template itself
        if line == "@READ_WRITE_PATHS@":
            if values.read_write:
                out.append("# The config keeps files outside StateDirectory: those folders too.")
                out.append("ReadWritePaths=" + " ".join(_quote(p) for p in values.read_write))
            continue
        rendered = line.replace("@EXEC_START@", " ".join(_quote(a) for a in command))
        rendered = rendered.replace("@USER@", values.user)
        if _MARKER.search(rendered):
            raise ValueError(f"unrendered marker in {_TEMPLATE}: {line}")
        out.append(rendered)
    return "\n".join(out) + "\n"
