"""The EtherNet/IP driver: polls an Allen-Bradley Logix controller's tags by name (pylogix).

pylogix speaks CIP over blocking sockets; each device gets one thread of its own for them, so a
slow controller never holds up another device or the agent's event loop. Tags polled at the same
interval are read in one multi-request (pylogix packs as many as fit a CIP packet per request).
A tag the controller refuses (no such tag, wrong type) comes back `bad` with the controller's
words in the log; a controller that does not answer drops the connection and the next poll
reconnects with backoff, the device health saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from pylogix import PLC

from edge_agent.drivers.base import Sample, Value
from edge_agent.drivers.polling import QUEUE_BATCHES, PollingDriver
from edge_agent.drivers.writes import check_write, value_kind
from edge_agent.errors import DeviceUnavailable, WriteFailed, WriteRefused
from millstream_common.backoff import Backoff

__all__ = ["EnipDriver", "EnipEndpoint", "EnipPoint"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

# pylogix's statuses that mean the controller (or the path to it) did not answer at all.
_UNREACHABLE = ("Connection", "Forward open failed", "timed out", "Socket", "Errno", "Failed to")
_INTEGERS = {"sint": (-128, 127), "int": (-(2**15), 2**15 - 1), "dint": (-(2**31), 2**31 - 1),
             "lint": (-(2**63), 2**63 - 1), "usint": (0, 255), "uint": (0, 2**16 - 1),
             "udint": (0, 2**32 - 1)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class EnipEndpoint:
    """Where the controller is: host, EtherNet/IP port, and the CPU's slot in its chassis."""

    host: str
    port: int = 44818
    slot: int = 0
    timeout_ms: int = 2000

    @property
    def timeout_s(self) -> float:
        """The response timeout in seconds."""
        return self.timeout_ms / 1000

    def __str__(self) -> str:
        return f"{self.host}:{self.port} (slot {self.slot})"


@dataclass(frozen=True, slots=True)
class EnipPoint:
    """One tag: the controller's symbolic name, optional type, scaling."""

    name: str
    tag: str
    type: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    deadband: float | None = None
    poll_ms: int = 1000
    max_interval_ms: int = 60_000
    unit: str | None = None
    writable: bool = False
    min: float | None = None
    max: float | None = None

    def value(self, raw: Any) -> Value:
        """The engineering value of what the controller answered; ValueError if it is not
        the type the profile names."""
        kinds = {"bool": bool, "string": str, "real": float, "lreal": float}
        expected = kinds.get(self.type or "", int if self.type in _INTEGERS else None)
        if expected is not None and not (
            isinstance(raw, expected) and not (expected is int and isinstance(raw, bool))
        ):
            raise ValueError(f"{self.tag} holds {raw!r}, not a {self.type}")
        if isinstance(raw, bool | str) or raw is None:
            return raw
        if not isinstance(raw, int | float):
            raise ValueError(  # noqa: TRY004 -- the device's value, judged like any other
                f"{self.tag} holds {type(raw).__name__}, not a number"
            )
        return raw if (self.scale, self.offset) == (1.0, 0.0) else raw * self.scale + self.offset


class EnipDriver(PollingDriver[EnipPoint]):
    """Polls one Logix controller; the runtime's Source (batches, close, health)."""

    def __init__(
        self,
        device: str,
        endpoint: EnipEndpoint,
        points: Sequence[EnipPoint],
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        queue_batches: int = QUEUE_BATCHES,
    ) -> None:
        self.endpoint = endpoint
        super().__init__(device, points, backoff=backoff, clock=clock, queue_batches=queue_batches)
        self._plc: PLC | None = None
        # One thread per device: pylogix blocks, and one controller's timeouts must not
        # hold up another's polls (nor the default pool the buffer writer uses).
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"enip-{device}")

    @property
    def timeout_s(self) -> float:
        """The response timeout."""
        return self.endpoint.timeout_s

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def connect(self) -> None:
        """Prepare the connection (pylogix opens it with the first request)."""
        if self._plc is None:
            plc = PLC(self.endpoint.host, slot=self.endpoint.slot, timeout=self.timeout_s,
                      port=self.endpoint.port)  # fmt: skip
            # pylogix's constructor makes two sockets it never closes (one it replaces on
            # connect, one for unsolicited messages we do not take): closed here, or every
            # reconnect during an outage would leak two file descriptors until the GC runs.
            for unused in (plc.conn.Socket, plc.conn.msg_socket):
                with contextlib.suppress(OSError):
                    unused.close()
            self._plc = plc
            self.counters["reconnects"] += 1

    async def read(self) -> list[Sample]:
        """Every tag once."""
        await self.connect()
        return await self._poll(list(self.points))

    async def poll_interval(self, poll_ms: int) -> list[Sample]:
        """The tags polled every `poll_ms`, once, in one multi-request."""
        return await self._poll([p for p in self.points if p.poll_ms == poll_ms])

    async def _poll(self, points: Sequence[EnipPoint]) -> list[Sample]:
        plc = self._plc
        if plc is None:
            raise DeviceUnavailable("not connected", device=self.device)
        ts = int(self._clock() * 1000)
        # Strings are read one by one: pylogix's multi-request answers a STRING/SSTRING with
        # its length instead of its text.
        many = [p for p in points if p.type != "string"]
        single = [p for p in points if p.type == "string"]
        try:
            responses: dict[int, Any] = {}
            if many:
                got = await self._call(plc.Read, [p.tag for p in many])
                responses.update(
                    zip(map(id, many), got if isinstance(got, list) else [got], strict=True)
                )
                self.counters["requests"] += 1
            for point in single:
                responses[id(point)] = await self._call(plc.Read, point.tag)
                self.counters["requests"] += 1
        except OSError as exc:
            await self.release()
            raise DeviceUnavailable(f"{self.endpoint}: {exc}", device=self.device) from None
        statuses = [str(r.Status) for r in responses.values()]
        if statuses and all(any(u in s for u in _UNREACHABLE) for s in statuses):
            await self.release()
            raise DeviceUnavailable(f"{self.endpoint}: {statuses[0]}", device=self.device)
        samples: list[Sample] = []
        for point in points:
            response = responses[id(point)]
            if response.Status != "Success":
                _log.debug("device %s: %s: %s", self.device, point.tag, response.Status)
                samples.append(Sample(point.name, ts, None, "bad"))
                continue
            try:
                samples.append(Sample(point.name, ts, point.value(response.Value), "good"))
            except ValueError as exc:
                _log.debug("device %s: %s", self.device, exc)
                samples.append(Sample(point.name, ts, None, "bad"))
        return samples

    async def release(self) -> None:
        """Close the connection (the next poll opens a new one)."""
        plc, self._plc = self._plc, None
        if plc is not None:
            await self._call(plc.Close)

    async def close(self) -> None:
        """Stop polling, close the connection, end the device's thread."""
        await super().close()
        self._thread.shutdown(wait=False)

    def _reopen(self) -> None:
        super()._reopen()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"enip-{self.device}")

    # -- writes (commands, `edge-agent write`) -------------------------------------------------

    async def read_tag(self, tag: str) -> Value:
        """One tag's value now; `WriteRefused` naming the tags there are when there is none."""
        point = self.point(tag)
        await self.connect()
        (sample,) = await self._poll([point])
        return sample.value

    async def write(self, tag: str, value: Value) -> tuple[Value, Value]:
        """Write `value` (engineering units) to a writable tag; (value before, read back)."""
        point = self.point(tag)
        kind = value_kind(point.type or ("string" if isinstance(value, str) else "number"))
        checked = check_write(tag, value, kind, writable=point.writable, min=point.min,
                              max=point.max)  # fmt: skip
        previous = await self.read_tag(tag)
        raw: Value = checked
        if isinstance(checked, int | float) and not isinstance(checked, bool):
            raw = (checked - point.offset) / point.scale
            if point.type in _INTEGERS or (
                isinstance(previous, int) and not isinstance(previous, bool)
            ):
                raw = round(raw)
                low, high = _INTEGERS.get(point.type or "dint", _INTEGERS["dint"])
                if not low <= raw <= high:
                    raise WriteRefused(
                        f"{tag}: {raw} does not fit {(point.type or 'dint').upper()}"
                    )
        plc = self._plc
        if plc is None:
            raise DeviceUnavailable("not connected", device=self.device)
        response = await self._call(plc.Write, point.tag, raw)
        if response.Status != "Success":
            raise WriteFailed(f"{point.tag}: {response.Status}")
        return previous, await self.read_tag(tag)
