"""`millstream-hub` for tests as an operator runs it: the CLI run to the end (`hub_cli`), and
`serve` as a subprocess with its log captured (`HubProcess`, `wait_ready`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["HUB", "HubProcess", "hub_cli", "hub_env", "wait_ready"]

HUB = str(Path(sys.executable).with_name("millstream-hub"))


def hub_env() -> dict[str, str]:
    """The environment for hub subprocesses: a signing secret for a config that names none."""
    env = dict(os.environ)
    env.setdefault("MILLSTREAM_JWT_SECRET", "test-" + os.urandom(24).hex())
    return env


def hub_cli(config: Path, *args: str) -> str:
    """stdout of `millstream-hub ARGS --config CONFIG`; the test fails on a non-zero exit."""
    done = subprocess.run(
        [HUB, *args, "--config", str(config)], capture_output=True, text=True, timeout=60,
        check=False, env=hub_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


class HubProcess:
    """`millstream-hub serve --config CONFIG` in a subprocess we own, log in `log`."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        """`env`: variables on top of `hub_env()`."""
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [HUB, "serve", "--config", str(config)],
            stderr=self._log,
            env={**hub_env(), **(env or {})},
        )

    def log_text(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL (if still running)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        """Kill it and close its log."""
        self.kill()
        self._log.close()


async def wait_ready(port: int, hub: HubProcess, within: float = 60.0) -> None:
    """Until `/health/ready` on `port` answers 200; the test fails if the hub exits first."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while True:
            assert hub.proc.poll() is None, hub.log_text()
            try:
                if (await client.get(f"http://127.0.0.1:{port}/health/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the hub did not become ready"
            await asyncio.sleep(0.1)
