"""node-opcua's server with the Press guard-door OffNormalAlarm (tests/interop/node_opcua_alarms/),
an independent peer for the agent's OPC-UA Alarms & Conditions tests (docs/opcua.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import ClassVar

from ._server import REPO, ProbeError, Server, ServerError

__all__ = ["ALARMS_DIR", "NodeOpcuaAlarms", "missing_install"]

ALARMS_DIR = REPO / "tests" / "interop" / "node_opcua_alarms"
_PACKAGE = "node-opcua-server"
_INSTALL = "run scripts/services install (npm ci in tests/interop/node_opcua_alarms)"


def missing_install(folder: Path = ALARMS_DIR) -> str | None:
    """Why the server cannot run here (no Node.js, package missing or not the pinned version)."""
    if shutil.which("node") is None:
        return f"Node.js is not installed; {_INSTALL}"
    wanted = json.loads((folder / "package.json").read_text())["dependencies"][_PACKAGE]
    try:
        meta = json.loads((folder / "node_modules" / _PACKAGE / "package.json").read_text())
    except (OSError, ValueError):
        return f"{_PACKAGE} is not installed in {folder}; {_INSTALL}"
    if meta.get("version") != wanted:
        return (
            f"{_PACKAGE} {meta.get('version')} is installed, package.json pins {wanted}; {_INSTALL}"
        )
    return None


class NodeOpcuaAlarms(Server):
    """tests/interop/node_opcua_alarms/server.js on 127.0.0.1; `.url` is opc.tcp://127.0.0.1:PORT.

    Security None, anonymous. Every start serves a fresh address space (GuardOpen false, the
    alarm inactive and acknowledged). Its PKI lands in the work dir (HOME).
    """

    name: ClassVar[str] = "node-opcua"

    @property
    def url(self) -> str:
        """opc.tcp://127.0.0.1:PORT."""
        return f"opc.tcp://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """Same as `.url`."""
        return self.url

    def _prepare(self) -> None:
        if (why := missing_install()) is not None:
            raise ServerError(why)
        self._node = shutil.which("node") or "node"
        # The log is appended to across restarts: only a ready line of this start counts.
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0

    def _argv(self) -> list[str]:
        return [self._node, str(ALARMS_DIR / "server.js"), "--port", str(self.port)]

    def _probe(self, timeout: float) -> None:
        # server.js prints the line after node-opcua's start() resolved, i.e. once it listens.
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            if f"ready {self.url}".encode() not in log.read():
                raise ProbeError("no ready line yet")
