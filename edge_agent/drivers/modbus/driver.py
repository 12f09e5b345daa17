"""The Modbus driver: one device, polled per interval, surviving whatever the device does.

Peers lose whole poll loops to one unhandled Modbus exception. Here a rejected span is split
and retried until only the tags the device refuses are marked bad (and never read across
again); a device that stops answering is retried with exponential backoff, jitter and a cap;
and no exception leaves a poll loop, so one failing device or tag never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from edge_agent.drivers.base import Sample, Value
from edge_agent.drivers.health import DeviceHealth, offline_after
from edge_agent.drivers.modbus.bus import BusPool, ModbusBus, RequestRejected, default_pool
from edge_agent.drivers.modbus.codec import decode_point, encode_point, register_count
from edge_agent.drivers.modbus.deadband import DeadbandFilter
from edge_agent.drivers.modbus.endpoint import ModbusEndpoint
from edge_agent.drivers.modbus.planner import (
    DEFAULT_MAX_GAP,
    Learned,
    ReadRequest,
    plan_reads,
    split_request,
)
from edge_agent.drivers.modbus.points import ModbusPoint
from edge_agent.drivers.writes import ValueKind, check_write, no_such_tag
from edge_agent.errors import DecodeError, DeviceUnavailable, WriteRefused
from millstream_common.backoff import Backoff, device_backoff

__all__ = ["ModbusDriver", "PointReading"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PointReading:
    """A sample with the registers it came from (None when the device refused them)."""

    point: ModbusPoint
    raw: tuple[int, ...] | None
    sample: Sample


def reading_of(point: ModbusPoint, raw: Sequence[int], ts: int) -> PointReading:
    """Decode one point's registers into a reading; undecodable or non-finite ⇒ `bad`."""
    try:
        value = decode_point(raw, point)
    except DecodeError:
        return PointReading(point, tuple(raw), Sample(point.name, ts, None, "bad"))
    # The wire carries finite numbers only; NaN from a meter means "no value" anyway.
    if isinstance(value, float) and not math.isfinite(value):
        return PointReading(point, tuple(raw), Sample(point.name, ts, None, "bad"))
    return PointReading(point, tuple(raw), Sample(point.name, ts, value, "good"))


class ModbusDriver:
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
        queue_batches: int = 1000,
    ) -> None:
        self.device = device
        self.endpoint = endpoint
        self.points = tuple(points)
        self.max_gap = max_gap
        self.learned = Learned()
        # Replaced by the runtime's (`report_to`); this one serves `probe` and tests.
        self.health = DeviceHealth(device, self.offline_after_s, clock)
        # polls, requests, samples, bad_points, rejected, reconnects: for benchmarks and metrics.
        self.counters: Counter[str] = Counter()
        # None: the event loop's default pool, so devices on one serial port share it anyway.
        self._pool = pool
        self._bus: ModbusBus | None = None
        self._backoff = backoff or device_backoff()
        self._clock = clock
        self._plan = self._make_plan()
        self._deadband = DeadbandFilter(
            {p.name: p.deadband for p in self.points if p.deadband is not None},
            {p.name: p.max_interval_ms for p in self.points},
        )
        # Bounded: a consumer that falls behind slows polling down instead of growing memory.
        self._queue: asyncio.Queue[list[Sample] | None] = asyncio.Queue(maxsize=queue_batches)
        self._supervisor: asyncio.Task[None] | None = None
        self._closed = False
        self._closing = asyncio.Event()  # wakes poll loops sleeping until their next poll

    async def __aenter__(self) -> ModbusDriver:
        if self._closed:
            self._reopen()
        try:
            await self.connect()
        except DeviceUnavailable as exc:
            self.health.poll_failed(exc.reason)
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

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
    def closed(self) -> bool:
        """True once `close()` has been called."""
        return self._closed

    @property
    def offline_after_s(self) -> float:
        """Three missed polls of the fastest tag, at least the timeout plus 2 s."""
        fastest = min((p.poll_ms for p in self.points), default=1000) / 1000
        return offline_after(fastest, self.endpoint.timeout_s)

    def report_to(self, health: DeviceHealth) -> None:
        """Report poll outcomes to the runtime's health of this device."""
        self.health = health

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
        return [r.sample for r in await self.read_raw()]

    async def read_raw(self) -> list[PointReading]:
        """Every point once, with its raw registers (what `edge-agent probe` shows)."""
        await self.connect()
        return await self._poll(self._plan)

    async def subscribe(self) -> AsyncIterator[Sample]:
        """Samples as the poll loops produce them (deadband applied), until `close()`."""
        async for batch in self.batches():
            for sample in batch:
                yield sample

    async def batches(self) -> AsyncIterator[list[Sample]]:
        """One list of samples per poll of one interval, until `close()`."""
        self._start()
        while not (self._closed and self._queue.empty()):
            batch = await self._queue.get()
            if batch is None:
                return
            yield batch

    async def close(self) -> None:
        """Stop the poll loops and give the link back; safe to call twice.

        A poll in flight is let finish (up to the timeout) and its samples queued: the device
        served them, and a stopping agent drains `batches()` into its buffer — cancelling it
        would lose readings the device counted as read."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        if self._supervisor is not None:
            # wait(), not await: our own cancellation must propagate, the supervisor's not.
            await asyncio.wait([self._supervisor], timeout=self.endpoint.timeout_s + 1.0)
            self._supervisor.cancel()
            await asyncio.wait([self._supervisor])
            failure = None if self._supervisor.cancelled() else self._supervisor.exception()
            if failure is not None:
                _log.error("device %s: poll loops failed", self.device, exc_info=failure)
        if self._bus is not None and self._pool is not None:
            self._pool.release(self._bus)
            self._bus = None
        # Wake a consumer blocked in batches(). Only an empty queue can block it; a consumer
        # with batches left drains them, then sees the driver closed.
        if self._queue.empty():
            self._queue.put_nowait(None)

    def _reopen(self) -> None:
        # A runtime may enter the same driver again after leaving it (retrying a device);
        # what it learned about the device (bad tags, cuts) is kept.
        self._closed = False
        self._closing = asyncio.Event()
        self._supervisor = None
        self._queue = asyncio.Queue(maxsize=self._queue.maxsize)

    # -- poll loops ---------------------------------------------------------------------------

    def _start(self) -> None:
        if self._supervisor is None and not self._closed:
            self._supervisor = asyncio.create_task(
                self._supervise(), name=f"modbus {self.device} supervisor"
            )

    async def _supervise(self) -> None:
        intervals = sorted({p.poll_ms for p in self.points})
        async with asyncio.TaskGroup() as group:
            for poll_ms in intervals:
                group.create_task(
                    self._poll_loop(poll_ms), name=f"modbus {self.device} {poll_ms}ms"
                )

    async def _poll_loop(self, poll_ms: int) -> None:
        loop = asyncio.get_running_loop()
        period = poll_ms / 1000
        due = loop.time()
        # The flag, not only the cancellation, ends the loop: Python 3.11's wait_for (inside
        # pymodbus) can swallow a cancel that arrives together with a response.
        while not self._closed:
            delay = period
            try:
                await self.connect()
                readings = await self._poll([r for r in self._plan if r.poll_ms == poll_ms])
            except Exception as exc:  # a poll loop must survive anything (DeviceUnavailable first)
                if self.closed:
                    return  # the failure is our own close() pulling the link away
                self.health.poll_failed(
                    exc.reason if isinstance(exc, DeviceUnavailable) else f"internal error: {exc!r}"
                )
                delay = max(period, self._backoff.next_delay())
            else:
                self.health.poll_ok()
                self._backoff.reset()
                self.counters["polls"] += 1
                samples = self._deadband.filter([r.sample for r in readings])
                if samples:
                    await self._queue.put(samples)
                    self.counters["samples"] += len(samples)
            # Fixed rate, not fixed delay; after an overrun or an outage start afresh from now.
            due += delay
            now = loop.time()
            due = max(due, now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), due - now)

    # -- one poll -----------------------------------------------------------------------------

    async def _poll(self, requests: Sequence[ReadRequest]) -> list[PointReading]:
        out: list[PointReading] = []
        learned_before = (len(self.learned.bad), len(self.learned.cuts))
        for request in requests:
            await self._execute(request, out)
        if (len(self.learned.bad), len(self.learned.cuts)) != learned_before:
            self._plan = self._make_plan()
        return out

    async def _execute(self, request: ReadRequest, out: list[PointReading]) -> bool:
        """Read one request into `out`; True when it found a point the device refuses."""
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
            return await self._rejected(request, exc, out)
        ts = self._now_ms()
        if len(request.points) == 1 and request.points[0].name in self.learned.bad:
            _log.info("device %s: tag %s readable again", self.device, request.points[0].name)
            self.learned.mark_good(request.points[0])
            self._plan = self._make_plan()
        for point, (start, stop) in zip(request.points, request.slices, strict=True):
            out.append(reading_of(point, regs[start:stop], ts))
        return False

    async def _rejected(
        self, request: ReadRequest, exc: RequestRejected, out: list[PointReading]
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
            out.append(PointReading(point, None, Sample(point.name, self._now_ms(), None, "bad")))
            return True
        left, right = split_request(request)
        found = await self._execute(left, out)
        found = await self._execute(right, out) or found
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
        point = self._point(tag)
        kind: ValueKind = (
            "bool" if point.type == "bool" else "string" if point.type == "string" else "number"
        )
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

    def _point(self, tag: str) -> ModbusPoint:
        for point in self.points:
            if point.name == tag:
                return point
        raise no_such_tag(self.device, tag, [p.name for p in self.points])

    async def read_tag(self, tag: str) -> Value:
        """One tag's value now (None when its registers hold no valid value); `WriteRefused`
        naming the tags there are when there is no such tag."""
        point = self._point(tag)
        await self.connect()
        count = 1 if point.is_bit else register_count(point.type, point.length)
        regs = await self.bus.read(
            point.table, point.address, count, self.endpoint.unit, self.endpoint.timeout_s
        )
        return reading_of(point, regs, self._now_ms()).sample.value

    def _make_plan(self) -> list[ReadRequest]:
        return plan_reads(self.points, max_gap=self.max_gap, learned=self.learned)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
