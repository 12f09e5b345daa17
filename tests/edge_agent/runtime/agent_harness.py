"""The agent as a subprocess (`agent_proc.py`) with its config, truth log and status file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mqtt_harness import Broker

HERE = Path(__file__).parent


@dataclass
class AgentProcess:
    """The agent run by `agent_proc.py`, which we own and kill by PID."""

    workdir: Path
    broker: Broker
    rate: float = 500.0
    devices: tuple[str, ...] = ("m1", "m2")
    mqtt: dict[str, Any] = field(default_factory=dict)
    buffer: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def truth(self) -> Path:
        return self.workdir / "truth.csv"

    @property
    def status_file(self) -> Path:
        return self.workdir / "state" / "agent-status.json"

    @property
    def buffer_file(self) -> Path:
        return self.workdir / "buffer.db"

    def config(self) -> dict[str, Any]:
        return {
            "agent": {"id": "agent-t", "site": "plant", "line": "l1"},
            "mqtt": {
                "url": self.broker.url,
                "reconnect_min": "100ms",
                "reconnect_max": "1s",
                "status_interval": "1s",
                **self.mqtt,
            },
            "buffer": {"path": "buffer.db", "commit_interval": "100ms", **self.buffer},
            "devices": [
                {"machine": m, "profile": "synthetic", "modbus": {"host": "127.0.0.1"}}
                for m in self.devices
            ],
        }

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A status file left by a previous run would make this one look started already.
        self.status_file.unlink(missing_ok=True)
        cfg = self.workdir / "agent.json"
        cfg.write_text(json.dumps(self.config()))
        with (self.workdir / "agent.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "agent_proc.py"),
                    str(cfg),
                    str(self.truth),
                    str(self.rate),
                ],
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONPATH": str(HERE)},
            )

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def terminate(self) -> int:
        assert self.proc is not None
        # A SIGTERM while the interpreter is still starting, before the agent installs its
        # handler, kills it (-15), which is not what any test asks about: its status file
        # appears once it runs with the handler in place.
        deadline = time.monotonic() + 30
        while not self.status_file.exists() and self.proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGUSR2)  # asyncio task dump into agent.log
            time.sleep(0.5)
            os.kill(self.proc.pid, signal.SIGUSR1)  # thread stack dump into agent.log
            time.sleep(0.5)
            raise AssertionError(f"agent ignored SIGTERM:\n{self.log()[-6000:]}") from None
        self.proc = None
        # The log says why, where a bare exit code would not.
        assert code == 0, f"agent exited {code} on SIGTERM:\n{self.log()[-6000:]}"
        return code

    def served(self) -> set[tuple[str, str, int]]:
        out = set()
        for line in self.truth.read_text().splitlines():
            parts = line.split(",")
            if len(parts) == 3 and parts[2].isdigit():
                out.add((parts[0], parts[1], int(parts[2])))
        return out

    def status(self) -> dict[str, Any]:
        return json.loads(self.status_file.read_text())

    def log(self) -> str:
        return (self.workdir / "agent.log").read_text()
