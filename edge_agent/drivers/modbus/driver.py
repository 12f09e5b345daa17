"""The Modbus driver: one device, polled per interval, surviving whatever the device does.

Peers lose whole poll loops to one unhandled Modbus exception. Here a rejected span is split
and retried until only the tags the device refuses are marked bad (and never read across
again); a device that stops answering is retried with exponential backoff, jitter and a cap;
and no exception leaves a poll loop, so one failing device or tag never stops the others.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import repeat

from edge_agent.drivers.base import Sample, Value
from edge_agent.drivers.modbus.bus import BusPool, ModbusBus, RequestRejected, default_pool
from edge_agent.drivers.modbus.codec import decode_point, encode_point, register_count
from edge_agent.drivers.modbus.endpoint import ModbusEndpoint
from edge_agent.drivers.modbus.planner import (
    DEFAULT_MAX_GAP,
    Learned,
    ReadRequest,
    plan_reads,
    split_request,
)
from edge_agent.drivers.modbus.points import ModbusPoint
from edge_agent.drivers.polling import QUEUE_BATCHES, PollingDriver
from edge_agent.drivers.writes import check_write, value_kind
from edge_agent.errors import DecodeError, DeviceUnavailable, WriteRefused
from millstream_common.backoff import Backoff

__all__ = ["ModbusDriver", "PointReading", "plain_samples", "sample_of"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PointReading:
    """A sample with the registers it came from (None when the device refused them)."""

    point: ModbusPoint
    raw: tuple[int, ...] | None
    sample: Sample


# A Sample made in C from a (tag, ts, value, quality) tuple, without the NamedTuple's
# Python-level constructor.
_sample = partial(tuple.__new__, Sample)

# Each point's raw registers (None when the device refused them), in sample order: kept only
# when asked for (`edge-agent probe`), never on the polling hot path.
_Raw = list[tuple[ModbusPoint, tuple[int, ...] | None]]


def sample_of(point: ModbusPoint, raw: Sequence[int], ts: int) -> Sample:
    """Decode one point's registers; undecodable or non-finite ⇒ `bad`."""
    try:
        value = decode_point(raw, point)
    except DecodeError:
        return Sample(point.name, ts, None, "bad")
    # The wire carries finite numbers only; NaN from a meter means "no value" anyway.
    if type(value) is float and not math.isfinite(value):
        return Sample(point.name, ts, None, "bad")
    return Sample(point.name, ts, value, "good")


def plain_samples(request: ReadRequest, regs: list[int], ts: int, out: list[Sample]) -> bool:
    """Append the samples of a request whose registers are its values (`ReadRequest.plain`)
    and return True; False (nothing appended) for any other request or registers out of range.

    The same samples `sample_of` makes for each point, made in C (a map over a zip) instead of
    one call per tag: the agent's hot path."""
    plain = request.plain
    if plain is None or not regs or min(regs) < 0 or max(regs) > 0xFFFF:
        return False
    names, starts = plain
    values = regs if len(starts) == len(regs) else list(map(regs.__getitem__, starts))
    out.extend(map(_sample, zip(names, repeat(ts), values, repeat("good"))))
    return True


class ModbusDriver(PollingDriver[ModbusPoint]):
    """Implements the driver Protocol (connect, read, subscribe, close) for one Modbus device."""

    def __init__(
        self,
        device: str,
        endpoint: ModbusEndpoint,
        points: Sequence[ModbusPoint],
        *,
        pool: BusPool | None = None,
        max_gap: int = DEFAULT_MAX_GAP,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        queue_batches: int = QUEUE_BATCHES,
    ) -> None:
        self.endpoint = endpoint
        self.max_gap = max_gap
        self.learned = Learned()
        super().__init__(device, points, backoff=backoff, clock=clock, queue_batches=queue_batches)
        # None: the event loop's default pool, so devices on one serial port share it anyway.
        self._pool = pool
        self._bus: ModbusBus | None = None
        self._plan = self._make_plan()

    @property
    def timeout_s(self) -> float:
        """The response timeout."""
        return self.endpoint.timeout_s

    @property
    def bus(self) -> ModbusBus:
        """The link this device is on (shared with the other devices on it)."""
        if self._closed:
            # A closed driver gave its link back; taking it again would leak it.
            raise DeviceUnavailable("driver is closed", device=self.device)
        if self._bus is None:
            if self._pool is None:
                self._pool = default_pool()
            self._bus = self._pool.acquire(self.endpoint.link, self.endpoint.timeout_s)
        return self._bus

    @property
    def online(self) -> bool:
        """True while the link is open and the last poll succeeded."""
        return self._bus is not None and self._bus.connected and self.health.failing_since is None

    @property
    def requests(self) -> list[ReadRequest]:
        """The current read plan, after what the device taught us."""
        return list(self._plan)

    async def connect(self) -> None:
        """Open the link (shared with other devices on it); raise `DeviceUnavailable` on failure."""
        bus = self.bus
        # Another device on the link may open it first; count only the connects we made.
        if not bus.connected and await bus.connect():
            self.counters["reconnects"] += 1

    async def read(self) -> list[Sample]:
        """Every point once; rejected points come back `bad`, a silent device raises."""
        await self.connect()
        return await self._poll(self._plan)

    async def read_raw(self) -> list[PointReading]:
        """Every point once, with its raw registers (what `edge-agent probe` shows)."""
        await self.connect()
        raw: _Raw = []
        samples = await self._poll(self._plan, raw)
        return [PointReading(p, r, s) for (p, r), s in zip(raw, samples, strict=True)]

    async def poll_interval(self, poll_ms: int) -> list[Sample]:
        """The tags polled every `poll_ms`, once (the agent's hot path: one sample a reading,
        nothing else kept)."""
        return await self._poll([r for r in self._plan if r.poll_ms == poll_ms])

    async def release(self) -> None:
        """Give the link back (closed when no other device on it still uses it)."""
        if self._bus is not None and self._pool is not None:
            self._pool.release(self._bus)
            self._bus = None

    # -- one poll -----------------------------------------------------------------------------

    async def _poll(self, requests: Sequence[ReadRequest], raw: _Raw | None = None) -> list[Sample]:
        out: list[Sample] = []
        learned_before = (len(self.learned.bad), len(self.learned.cuts))
        for request in requests:
            if self._closed:
                # Stopping: the request in flight was answered; send no further one, and hand
                # over what this poll read (raising would throw away answers already received).
                break
            await self._execute(request, out, raw)
        if (len(self.learned.bad), len(self.learned.cuts)) != learned_before:
            self._plan = self._make_plan()
        return out

    async def _execute(self, request: ReadRequest, out: list[Sample], raw: _Raw | None) -> bool:
        """Read one request into `out` (and `raw`); True when it found a point the device
        refuses."""
        self.counters["requests"] += 1
        try:
            regs = await self.bus.read(
                request.table,
                request.address,
                request.count,
                self.endpoint.unit,
                self.endpoint.timeout_s,
            )
        except RequestRejected as exc:
            self.counters["rejected"] += 1
            return await self._rejected(request, exc, out, raw)
        ts = self._now_ms()
        if len(request.points) == 1 and request.points[0].name in self.learned.bad:
            _log.info("device %s: tag %s readable again", self.device, request.points[0].name)
            self.learned.mark_good(request.points[0])
            self._plan = self._make_plan()
        if raw is None and plain_samples(request, regs, ts, out):
            return False
        for point, (start, stop) in zip(request.points, request.slices, strict=True):
            registers = regs[start:stop]
            out.append(sample_of(point, registers, ts))
            if raw is not None:
                raw.append((point, tuple(registers)))
        return False

    async def _rejected(
        self, request: ReadRequest, exc: RequestRejected, out: list[Sample], raw: _Raw | None
    ) -> bool:
        if len(request.points) == 1:
            point = request.points[0]
            if point.name not in self.learned.bad:
                _log.warning(
                    "device %s: tag %s marked bad (%s); the other tags are read around it",
                    self.device,
                    point.name,
                    exc,
                )
                self.learned.mark_bad(point)
            self.counters["bad_points"] += 1
            out.append(Sample(point.name, self._now_ms(), None, "bad"))
            if raw is not None:
                raw.append((point, None))
            return True
        left, right = split_request(request)
        found = await self._execute(left, out, raw)
        found = await self._execute(right, out, raw) or found
        if not found:
            # Both halves read fine: the device refuses the gap between them.
            self.learned.cut(request.table, right.address)
        return found

    # -- writes (commands, `edge-agent write`) -------------------------------------------------

    async def write(self, tag: str, value: Value) -> tuple[Value, Value]:
        """Write `value` (engineering units) to a writable tag; (value before, value read back).

        `WriteRefused` before anything is sent when the profile does not allow it;
        `DeviceUnavailable` (or `RequestRejected`, the device's own refusal) when sending fails.
        """
        point = self.point(tag)
        kind = value_kind(point.type)
        value = check_write(tag, value, kind, writable=point.writable, min=point.min, max=point.max)
        try:
            registers = encode_point(value, point)  # type: ignore[arg-type] # checked above
        except (TypeError, ValueError) as exc:
            raise WriteRefused(f"{tag}: {exc}") from exc
        await self.connect()
        previous = await self.read_tag(tag)
        timeout = self.endpoint.timeout_s
        if point.bit is not None:
            await self.bus.write_bit(
                point.address, point.bit, bool(value), self.endpoint.unit, timeout
            )
        else:
            await self.bus.write(point.table, point.address, registers, self.endpoint.unit, timeout)
        return previous, await self.read_tag(tag)

    async def read_tag(self, tag: str) -> Value:
        """One tag's value now (None when its registers hold no valid value); `WriteRefused`
        naming the tags there are when there is no such tag."""
        point = self.point(tag)
        await self.connect()
        count = 1 if point.is_bit else register_count(point.type, point.length)
        regs = await self.bus.read(
            point.table, point.address, count, self.endpoint.unit, self.endpoint.timeout_s
        )
        return sample_of(point, regs, self._now_ms()).value

    def _make_plan(self) -> list[ReadRequest]:
        return plan_reads(self.points, max_gap=self.max_gap, learned=self.learned)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
