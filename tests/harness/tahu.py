"""Eclipse Tahu's JavaScript Sparkplug B client as a test peer
(tests/interop/sparkplug/edge_node.js): an independent edge node the hub hosts, and a decoder
for what the agent publishes."""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.hubproc import HubProcess, wait_ready

__all__ = ["EdgeNode", "host_ready"]

INTEROP = Path(__file__).resolve().parents[1] / "interop" / "sparkplug"


class EdgeNode:
    """One Tahu edge node process; `send` a command, `expect` an event it prints."""

    def __init__(self) -> None:
        if shutil.which("node") is None:
            pytest.fail("Sparkplug interop needs Node.js (scripts/services install)")
        if not (INTEROP / "node_modules" / "sparkplug-client").is_dir():
            pytest.fail("Tahu's sparkplug-client is not installed: run scripts/services install")
        self.proc = subprocess.Popen(
            ["node", str(INTEROP / "edge_node.js")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True, name="tahu-stdout").start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self.events.put(json.loads(line))

    def send(self, op: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()

    async def expect(self, match: Callable[[dict[str, Any]], bool], within: float = 20.0) -> None:
        """Wait for an event `match` accepts (seen before or arriving now)."""
        if any(match(e) for e in self.seen):
            self.seen = [e for e in self.seen if not match(e)]
            return
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.02)
                continue
            if match(event):
                return
            self.seen.append(event)
        raise AssertionError(f"no such event from the edge node; saw {self.seen}")

    async def do(self, op: str, **args: Any) -> None:
        """Send a command and wait until the node has carried it out."""
        self.send(op, **args)
        await self.expect(lambda e: e == {"event": "done", "op": op})

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


async def host_ready(port: int, hub: HubProcess) -> None:
    """The hub is ready and its Sparkplug session subscribed (the node's data reaches it)."""
    await wait_ready(port, hub)
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as http:
        while True:
            ready = (await http.get(f"http://127.0.0.1:{port}/health/ready")).json()
            if (ready.get("sparkplug") or {}).get("subscribed"):
                return
            assert hub.proc.poll() is None, hub.log_text()
            assert time.monotonic() < deadline, f"no Sparkplug host: {ready}"
            await asyncio.sleep(0.05)
