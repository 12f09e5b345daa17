"""EtherNet/IP shell: one simulated Logix controller, served by cpppo's CIP server in a child
process (enip_child.py) that this side feeds with every tick's changed values.

cpppo is a development dependency (GPL-licensed, never shipped): without it the simulator says
so instead of starting the Logix machine. Faults act where a real controller's would show:
`slow` delays each reply, `exception` answers a tag (or every tag) with a CIP general status,
`drop` closes the open connections, `offline`/`restart` stop listening for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.util
import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from edge_agent.simulators import faults
from edge_agent.simulators.faults import Fault, FaultBook
from edge_agent.simulators.plc_values import raw_value
from edge_agent.simulators.tags import LogixTag, Value

__all__ = ["ENIP_SLOT", "LogixDevice", "cpppo_missing"]

ENIP_SLOT = 0  # a CompactLogix's CPU; cpppo answers any route
_CIP_TYPE = {"bool": "BOOL", "sint": "SINT", "int": "INT", "dint": "DINT", "real": "REAL",
             "lreal": "LREAL", "string": "SSTRING"}  # fmt: skip
_ELEMENT = re.compile(r"^(.*)\[(\d+)\]$")
_START_S = 30.0


def cpppo_missing() -> str | None:
    """Why the Logix machine cannot run here, or None when cpppo is installed."""
    if importlib.util.find_spec("cpppo") is not None:
        return None
    return (
        "the simulated Logix machine (--enip-port) is served by cpppo, which is not installed; "
        "install the development dependencies (pip install cpppo), or leave out --enip-port"
    )


def cpppo_tags(tags: tuple[LogixTag, ...]) -> list[str]:
    """cpppo's tag definitions (`Name=REAL`, `Counters=DINT[2]`) for a machine's tags."""
    sizes: dict[str, tuple[str, int | None]] = {}
    for tag in tags:
        match = _ELEMENT.match(tag.tag)
        base, index = (match.group(1), int(match.group(2))) if match else (tag.tag, None)
        _, known = sizes.get(base, ("", None))
        size = None if index is None else max(index + 1, known or 0)
        sizes[base] = (_CIP_TYPE[tag.type], size)
    return [f"{base}={kind}" + ("" if n is None else f"[{n}]") for base, (kind, n) in sizes.items()]


class LogixDevice:
    """One simulated Logix controller: the cpppo process serving it, its faults, its writes."""

    def __init__(
        self,
        name: str,
        tags: tuple[LogixTag, ...],
        faults: FaultBook,
        on_write: Callable[[str, Value], None] | None = None,
    ) -> None:
        self.name = name
        self.tags = tags
        self.faults = faults
        self.on_write = on_write
        self.host = "127.0.0.1"
        self.port = 0
        self.listening = False
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._values: dict[str, Any] = {}
        self._by_name = {t.name: t for t in tags}
        # The delay and CIP statuses (per cpppo tag; None: every tag) cpppo was last told.
        self._sent_faults: tuple[float, dict[str | None, int]] = (0.0, {})

    def _raw(self, values: dict[str, Value], names: set[str] | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for tag in self.tags:
            if names is None or tag.name in names:
                raw = raw_value(tag, values[tag.name])
                out[tag.tag] = float(raw) if tag.type in ("real", "lreal") else raw
        return out

    def update(self, values: dict[str, Value], changed: set[str]) -> None:
        """Hand a tick's changed values to the controller (and the faults now in force)."""
        raw = self._raw(values, changed)
        self._values.update(raw)
        request = self._fault_state()
        if raw:
            request["values"] = raw
        if request:
            self._send(request)

    def _fault_state(self) -> dict[str, Any]:
        """The delay and error codes the faults in force ask of cpppo, when they changed."""
        active = self.faults.active(self.name, time.monotonic())
        delay = float(sum(f.delay_s for f in active if f.kind == "slow"))
        errors: dict[str | None, int] = {
            self._base(f): f.code for f in active if f.kind == "exception"
        }
        state = (delay, errors)
        if state == self._sent_faults:
            return {}
        cleared: dict[str | None, int] = {t: 0 for t in self._sent_faults[1] if t not in errors}
        self._sent_faults = state
        requests: dict[str, Any] = {"delay": delay}
        # One error per line: cpppo's tags take them one by one.
        requests["errors"] = [{"tag": t, "code": c} for t, c in ({**cleared, **errors}).items()]
        return requests

    def _base(self, fault: Fault) -> str | None:
        if fault.tag is None:
            return None
        match = _ELEMENT.match(self._by_name[fault.tag].tag)
        return match.group(1) if match else self._by_name[fault.tag].tag

    def _send(self, request: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            return
        for error in request.pop("errors", []):
            proc.stdin.write(json.dumps({"error": error}).encode() + b"\n")
        proc.stdin.write(json.dumps(request).encode() + b"\n")

    async def start(self, host: str, port: int) -> None:
        """Start the controller on host:port (0: any free port, then kept for restarts) with
        the values of the last tick; returns once it listens."""
        self.host = host
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge_agent.simulators.enip_child", f"{host}:{port}",
            *cpppo_tags(self.tags),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self._proc = proc
        self._sent_faults = (0.0, {})
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(json.dumps({"values": self._values}).encode() + b"\n")
        first: dict[str, Any] = {}
        with contextlib.suppress(TimeoutError, ValueError):
            async with asyncio.timeout(_START_S):
                first = json.loads(await proc.stdout.readline() or b"{}")
        if "listening" not in first:
            await self.stop()
            raise OSError(errno.EADDRINUSE, f"{self.name}: {host}:{port} is in use")
        self.port = int(first["listening"])
        self._reader = asyncio.create_task(self._read_writes(proc), name=f"sim-enip-{self.name}")
        self.listening = True

    async def _read_writes(self, proc: asyncio.subprocess.Process) -> None:
        """Clients' writes of writable tags reach the model (the next tick serves its answer)."""
        assert proc.stdout is not None
        async for line in proc.stdout:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                report = json.loads(line)
                for tag in self.tags:
                    if not tag.writable:
                        continue
                    match = _ELEMENT.match(tag.tag)
                    base = match.group(1) if match else tag.tag
                    if base != report["write"]:
                        continue
                    raw = report["value"] if match is None else report["value"][int(match.group(2))]
                    value = raw if isinstance(raw, bool | str) else raw * tag.scale + tag.offset
                    if self.on_write is not None:
                        self.on_write(tag.name, value)

    async def stop(self) -> None:
        """Stop the controller: its connections close and its port refuses."""
        proc, self._proc = self._proc, None
        self.listening = False
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            async with asyncio.timeout(5):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def drop_connections(self) -> None:
        """Close every open connection now (the controller keeps listening)."""
        self._send({"drop": True})

    async def go_offline(self, seconds: float) -> None:
        """Stop listening for `seconds`, then serve again on the same port."""
        await faults.go_offline(self, seconds)
