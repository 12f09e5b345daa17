"""Communication faults a machine can be told to show (pure: the monotonic clock is passed in).

| kind      | what a client sees                                                 | default  |
| --------- | ------------------------------------------------------------------ | -------- |
| drop      | its open TCP connections are closed now (it may reconnect at once) | one-shot |
|           | OPC-UA: every session of the one server                            |          |
| offline   | connections closed and the port refuses new ones for the duration  | 5 s      |
| slow      | every answer is delayed by `delay_ms` (default 2000 ms)            | 30 s     |
| exception | Modbus exception `code` for requests touching `tag` (or all)       | 30 s     |
| restart   | OPC-UA: the server stops, stays down for the duration, restarts;   | 2 s      |
|           | Modbus: same as offline                                            |          |

`exception` defaults to code 2 (illegal data address) with a tag and 6 (device busy) without.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

__all__ = [
    "DEFAULT_FAULT_S",
    "FAULT_KINDS",
    "Fault",
    "FaultBook",
    "FaultKind",
    "Listener",
    "go_offline",
]

FaultKind = Literal["drop", "offline", "slow", "exception", "restart"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
DEFAULT_FAULT_S: dict[str, float] = {
    "drop": 0.0,
    "offline": 5.0,
    "slow": 30.0,
    "exception": 30.0,
    "restart": 2.0,
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault on one machine, active on the monotonic clock over [start, end)."""

    machine: str
    kind: FaultKind
    start: float
    end: float
    delay_s: float = 0.0
    code: int = 0
    tag: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description for the control interface."""
        return {
            "machine": self.machine,
            "kind": self.kind,
            "duration": round(self.end - self.start, 3),
            "delay_ms": round(self.delay_s * 1000),
            "code": self.code,
            "tag": self.tag,
        }


class FaultBook:
    """The faults in force, queried by the servers on every request."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Put a fault in force."""
        self.faults.append(fault)

    def clear(self, machine: str | None = None) -> int:
        """Lift the faults of one machine (None: all); returns how many were lifted."""
        keep = [f for f in self.faults if machine is not None and f.machine != machine]
        removed = len(self.faults) - len(keep)
        self.faults = keep
        return removed

    def active(self, machine: str, now: float) -> list[Fault]:
        """Faults in force on `machine` at monotonic time `now`."""
        if not self.faults:
            return []
        return [f for f in self.faults if f.machine == machine and f.start <= now < f.end]

    def expire(self, now: float) -> None:
        """Forget faults that have ended."""
        self.faults = [f for f in self.faults if f.end > now]


class Listener(Protocol):
    """A simulated device's server: the Modbus, S7 and Logix ones."""

    name: str
    host: str
    port: int

    async def start(self, host: str, port: int) -> None: ...
    async def stop(self) -> None: ...


async def go_offline(device: Listener, seconds: float) -> None:
    """The `offline` fault: refuse connections for `seconds`, then listen again on the same
    port. Someone may grab the port meanwhile: the device keeps refusing, as one that fails to
    come back would, and tries again rather than kill the whole plant."""
    await device.stop()
    await asyncio.sleep(seconds)
    while True:
        try:
            await device.start(device.host, device.port)
        except OSError:
            logging.getLogger(__name__).warning(
                "%s: cannot listen again on port %d yet", device.name, device.port
            )
            await asyncio.sleep(1.0)
        else:
            return
