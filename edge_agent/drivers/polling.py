"""What every polled protocol shares (Modbus, S7): one poll loop per interval, health, backoff,
deadband, a bounded queue of samples, and a close that loses nothing.

A protocol's driver subclasses `PollingDriver` and says how to connect, how to read the tags of
one interval, and how to let go of its connection. No exception leaves a poll loop: a failed poll
is reported to the device health (in words) and retried with backoff, so one failing device or
tag never stops the others. `close()` lets a read in flight finish (up to the timeout) and
`batches()` hands out everything read before it ends — a stopping agent drains it into its
buffer; cancelling would lose readings the device counted as read.

A poll waits for room in the queue *before* it reads, never after: what a device answered is
handed over at once, so nothing read waits on the consumer (a stop would have to cut that wait
short and lose it), and an agent that cannot keep up polls less often instead of reading
ahead into memory — the schedule share then says what it really keeps up with.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Generic, Protocol, Self, TypeVar

from edge_agent.drivers.base import Sample
from edge_agent.drivers.deadband import DeadbandFilter
from edge_agent.drivers.health import DeviceHealth, offline_after
from edge_agent.drivers.writes import no_such_tag
from edge_agent.errors import DeviceUnavailable
from millstream_common.backoff import Backoff, device_backoff

__all__ = ["QUEUE_BATCHES", "SCHEDULE_WINDOW_S", "PolledPoint", "PollingDriver"]

_log = logging.getLogger(__name__)

# Schedule adherence is judged over windows this long (polls done ÷ polls due), and said in
# the log when a window falls below SCHEDULE_WARN.
SCHEDULE_WINDOW_S = 10.0
SCHEDULE_WARN = 0.9
# Polls read but not yet taken by the consumer, per device. Two keep a poll in flight while the
# consumer works through the last one; more only hold readings in memory that a stop must then
# drain (at 50 devices of 1,000 tags, 1,000 batches each were 50 million samples).
QUEUE_BATCHES = 2


class PolledPoint(Protocol):
    """What the poll loops need of a tag."""

    @property
    def name(self) -> str: ...

    @property
    def poll_ms(self) -> int: ...

    @property
    def deadband(self) -> float | None: ...

    @property
    def max_interval_ms(self) -> int: ...


P = TypeVar("P", bound=PolledPoint)


class PollingDriver(abc.ABC, Generic[P]):
    """Poll loops, health, queue and close for one device (module docstring)."""

    def __init__(
        self,
        device: str,
        points: Sequence[P],
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        queue_batches: int = QUEUE_BATCHES,
    ) -> None:
        self.device = device
        self.points: tuple[P, ...] = tuple(points)
        self._intervals = sorted({p.poll_ms for p in points})
        # Replaced by the runtime's (`report_to`); this one serves `probe` and tests.
        self.health = DeviceHealth(device, self.offline_after_s, clock)
        # polls, requests, samples, reconnects, …: for benchmarks, metrics and tests.
        self.counters: Counter[str] = Counter()
        self._backoff = backoff or device_backoff()
        self._clock = clock
        self._deadband = DeadbandFilter(
            {p.name: p.deadband for p in points if p.deadband is not None},
            {p.name: p.max_interval_ms for p in points},
        )
        # Bounded by the poll loops, which wait for room before they read (`_wait_room`): a
        # consumer that falls behind slows polling down instead of growing memory. The queue
        # itself never refuses a batch, so a poll's answer is never held back.
        self._queue: asyncio.Queue[list[Sample] | None] = asyncio.Queue()
        self.queue_batches = max(1, queue_batches)
        self._room = asyncio.Event()  # set whenever the consumer takes a batch, and on close
        self._supervisor: asyncio.Task[None] | None = None
        self._closed = False
        self._closing = asyncio.Event()  # wakes poll loops sleeping until their next poll
        self.schedule_window_s = SCHEDULE_WINDOW_S
        # poll_ms → (window start, polls in it), and each interval's last judged share.
        self._windows: dict[int, tuple[float, int]] = {}
        self._shares: dict[int, float] = {}

    # -- what a protocol says -----------------------------------------------------------------

    @property
    @abc.abstractmethod
    def timeout_s(self) -> float:
        """How long one request may take."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Connect if not connected; `DeviceUnavailable` when the device cannot be reached."""

    @abc.abstractmethod
    async def poll_interval(self, poll_ms: int) -> list[Sample]:
        """Read the tags polled every `poll_ms` once (connected); `DeviceUnavailable` when the
        device does not answer."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Let go of the connection (the poll loops have ended)."""

    # -- shared -------------------------------------------------------------------------------

    @property
    def offline_after_s(self) -> float:
        """Three missed polls of the fastest tag, at least the timeout plus 2 s."""
        fastest = self._intervals[0] / 1000 if self._intervals else 1.0
        return offline_after(fastest, self.timeout_s)

    def point(self, tag: str) -> P:
        """The tag named `tag`; `WriteRefused` naming the tags there are when there is none."""
        for point in self.points:
            if point.name == tag:
                return point
        raise no_such_tag(self.device, tag, [p.name for p in self.points])

    def report_to(self, health: DeviceHealth) -> None:
        """Report poll outcomes to the runtime's health of this device."""
        self.health = health

    @property
    def closed(self) -> bool:
        """True once `close()` has been called."""
        return self._closed

    async def __aenter__(self) -> Self:
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

    def _reopen(self) -> None:
        # A runtime may enter the same driver again after leaving it (retrying a device);
        # what the protocol learned about the device is kept.
        self._closed = False
        self._closing = asyncio.Event()
        self._supervisor = None
        self._queue = asyncio.Queue()
        self._room = asyncio.Event()

    async def subscribe(self) -> AsyncIterator[Sample]:
        """Samples as the poll loops produce them (deadband applied), until `close()`."""
        async for batch in self.batches():
            for sample in batch:
                yield sample

    async def batches(self) -> AsyncIterator[list[Sample]]:
        """One list of samples per poll of one interval, until `close()`."""
        if self._supervisor is None and not self._closed:
            self._supervisor = asyncio.create_task(
                self._supervise(), name=f"{self.device} supervisor"
            )
        while not (self._closed and self._queue.empty()):
            batch = await self._queue.get()
            self._room.set()
            if batch is None:
                return
            yield batch

    async def close(self) -> None:
        """Stop the poll loops (a read in flight finishes and is handed over) and let go of
        the connection; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._room.set()
        if self._supervisor is not None:
            # wait(), not await: our own cancellation must propagate, the supervisor's not.
            await asyncio.wait([self._supervisor], timeout=self.timeout_s + 1.0)
            self._supervisor.cancel()
            await asyncio.wait([self._supervisor])
            failure = None if self._supervisor.cancelled() else self._supervisor.exception()
            if failure is not None:
                _log.error("device %s: poll loops failed", self.device, exc_info=failure)
        await self.release()
        # Wake a consumer blocked in batches(). Only an empty queue can block it; a consumer
        # with batches left drains them, then sees the driver closed.
        if self._queue.empty():
            self._queue.put_nowait(None)

    def _count_poll(self, poll_ms: int, now: float) -> None:
        """Judge, per window, the share of scheduled polls done; the device's is its worst
        interval's (the one that shows overload first)."""
        start, polls = self._windows.get(poll_ms, (now, 0))
        polls += 1
        elapsed = now - start
        if elapsed < self.schedule_window_s:
            self._windows[poll_ms] = (start, polls)
            return
        self._windows[poll_ms] = (now, 0)
        # The first poll of a window is the one at its start: polls - 1 periods elapsed.
        share = min(1.0, (polls - 1) * (poll_ms / 1000) / elapsed)
        self._shares[poll_ms] = share
        worst = min(self._shares.values())
        before, self.health.schedule = self.health.schedule, round(worst, 3)
        if worst < SCHEDULE_WARN and (before is None or before >= SCHEDULE_WARN):
            _log.warning(
                "device %s: polling at %.0f %% of schedule (tags every %d ms): more is "
                "configured than the agent or the device keeps up with; poll less often, or "
                "fewer tags",
                self.device, 100 * worst, poll_ms,
            )  # fmt: skip
        elif worst >= SCHEDULE_WARN and before is not None and before < SCHEDULE_WARN:
            _log.info("device %s: polling on schedule again", self.device)

    async def _wait_room(self) -> bool:
        """Until the queue has room for one more poll (True) or the driver closes (False)."""
        while self._queue.qsize() >= self.queue_batches and not self._closed:
            self._room.clear()
            await self._room.wait()
        return not self._closed

    async def _supervise(self) -> None:
        async with asyncio.TaskGroup() as group:
            for poll_ms in self._intervals:
                group.create_task(self._poll_loop(poll_ms), name=f"{self.device} {poll_ms}ms")

    async def _poll_loop(self, poll_ms: int) -> None:
        loop = asyncio.get_running_loop()
        period = poll_ms / 1000
        due = loop.time()
        # The flag, not only the cancellation, ends the loop: Python 3.11's wait_for (inside
        # client libraries) can swallow a cancel that arrives together with a response.
        while not self._closed:
            delay = period
            if not await self._wait_room():
                return  # closing: nothing more is read
            try:
                await self.connect()
                samples = await self.poll_interval(poll_ms)
            except Exception as exc:  # a poll loop must survive anything (DeviceUnavailable first)
                if self.closed:
                    return  # the failure is our own close() pulling the connection away
                self.health.poll_failed(
                    exc.reason if isinstance(exc, DeviceUnavailable) else f"internal error: {exc!r}"
                )
                delay = max(period, self._backoff.next_delay())
                self._windows.pop(poll_ms, None)  # an outage is not a slow schedule
            else:
                self.health.poll_ok()
                self._backoff.reset()
                self.counters["polls"] += 1
                self._count_poll(poll_ms, loop.time())
                reported = self._deadband.filter(samples)
                if reported:
                    # Room was made before the read: handed over at once, even when closing.
                    self._queue.put_nowait(reported)
                    self.counters["samples"] += len(reported)
            # Fixed rate, not fixed delay; after an overrun or an outage start afresh from now.
            due += delay
            now = loop.time()
            due = max(due, now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), due - now)
