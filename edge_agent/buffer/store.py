"""`Buffer`: the asyncio face of the store-and-forward buffer (an async context manager)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import wire
from edge_agent.buffer.db import Batch, BatchTracing, BufferDB, ChunkRef
from edge_agent.buffer.readings import Encoder, Reading, Value
from edge_agent.buffer.reserve import DiskReserve
from edge_agent.buffer.writer import Bounds, WriterThread

__all__ = ["Buffer", "BufferStats"]

T = TypeVar("T")

# Readings handed to the writer and not yet written above which acquisition waits. Each is
# latency at overload (at ~150,000 readings/s, 100,000 queued were 0.7 s of p99), and 20 chunks
# of a full batch keep the writer as busy as 100 did.
QUEUE_HIGH = 20_000


@dataclass(frozen=True, slots=True)
class BufferStats:
    """A snapshot of what the buffer holds and what it has dropped."""

    chunks: int
    readings: int
    nbytes: int
    oldest_ts: int | None
    pending: dict[str, int]
    dropped: dict[str, int]
    downsampled: dict[str, int]
    in_flight: int
    rejected: dict[str, int]
    disk_full_since: float | None = None  # wall clock, while writes fail for lack of space
    # Per device, the newest spans of reading time dropped by the bounds: (first_ts, last_ts, n).
    drop_spans: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)


class Buffer:
    """SQLite store-and-forward buffer; all I/O on one writer thread, never on the event loop."""

    def __init__(
        self,
        path: Path | str,
        *,
        bounds: Bounds | None = None,
        commit_interval: float = 0.1,
        encoder: Encoder | None = None,
        clock: Callable[[], float] = time.time,
        live_capacity: int = 10_000,
        queue_high: int = QUEUE_HIGH,
        reserve_bytes: int = 0,
        tracing: BatchTracing | None = None,
    ) -> None:
        """`tracing`: follows each batch for its trace (edge_agent/publish/tracing.py)."""
        if not 0 < commit_interval <= 0.2:
            # 200 ms is the promise: at most that much is lost on power failure.
            raise ValueError("commit_interval must be in (0, 0.2] seconds")
        self.path = Path(path)
        self._clock = clock
        self._encoder = encoder
        self._tracing = tracing
        self.bounds = bounds or Bounds()
        self._commit_interval = commit_interval
        self.reserve = DiskReserve(self.path, reserve_bytes)
        # Committed chunks waiting for the live lane. Bounded: what falls off is still in SQLite
        # and the backlog lane finds it, so a long outage costs no memory here.
        self.live: deque[ChunkRef] = deque(maxlen=live_capacity)
        self.live_ready = asyncio.Event()
        # Backpressure: readings handed to the writer but not yet written. Above the high mark
        # producers wait (`wait_room`), so a writer starved of CPU slows polling down instead
        # of growing an unbounded queue in memory.
        self.queued = 0
        self.queue_high = queue_high
        self._room = asyncio.Event()
        self._room.set()
        self._writer: WriterThread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.moved_aside: Path | None = None

    async def __aenter__(self) -> Buffer:
        self._loop = asyncio.get_running_loop()
        self._writer = WriterThread(
            self._open_db,
            bounds=self.bounds,
            commit_interval=self._commit_interval,
            on_committed=self._committed_from_thread,
            clock=self._clock,
            reserve=self.reserve,
        )
        self._writer.start()
        db = await asyncio.wrap_future(self._writer.ready)
        self.moved_aside = db.moved_aside
        return self

    def _open_db(self) -> BufferDB:
        db = BufferDB(self.path, now_ms=int(self._clock() * 1000), encoder=self._encoder)
        db.tracing = self._tracing
        return db

    async def __aexit__(self, *exc: object) -> None:
        writer = self._writer
        if writer is None:
            return
        writer.stop()
        await asyncio.to_thread(writer.join)
        self._writer = None

    def _committed_from_thread(self, refs: list[ChunkRef]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._committed, refs)

    def _committed(self, refs: list[ChunkRef]) -> None:
        self.live.extend(refs)
        self.live_ready.set()

    @property
    def writer(self) -> WriterThread:
        """The writer thread (raises if the buffer is not open)."""
        if self._writer is None:
            raise RuntimeError("buffer is not open")
        return self._writer

    async def call(self, fn: Callable[[BufferDB], T]) -> T:
        """Run `fn(db)` on the writer thread and return its result."""
        return await asyncio.wrap_future(self.writer.submit(fn))

    def append(self, device: str, readings: list[Reading]) -> None:
        """Queue readings of one device as one chunk; durable within `commit_interval`."""
        if not readings:
            return
        n = len(readings)
        self.queued += n
        if self.queued > self.queue_high:
            self._room.clear()
        loop = self._loop
        assert loop is not None

        def write(db: BufferDB) -> ChunkRef | None:
            try:
                return db.append(device, readings)
            finally:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(self._written, n)

        self.writer.post(write)

    def append_events(
        self, machine: str, events: list[wire.MachineEvent], state: dict[str, Value]
    ) -> None:
        """Queue a machine's events as one chunk of its events lane, with the new last values
        of its `event:` tags; durable within `commit_interval`, published in batches of their
        own (edge_agent/buffer/readings.py)."""
        if not events and not state:
            return
        n = len(events)
        self.queued += n
        loop = self._loop
        assert loop is not None

        def write(db: BufferDB) -> ChunkRef | None:
            try:
                return db.append_events(machine, events, state)
            finally:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(self._written, n)

        self.writer.post(write)

    def _written(self, n: int) -> None:
        self.queued -= n
        if self.queued <= self.queue_high // 2:
            self._room.set()

    async def wait_room(self) -> None:
        """Return when the writer has room again (immediately unless it is far behind)."""
        await self._room.wait()

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""

        def request(db: BufferDB) -> None:
            db.commit_requested = True

        await self.call(request)
        # The request is served right after the operation above; this one returns after it.
        await self.call(lambda db: None)

    def take_live(self) -> list[ChunkRef]:
        """Take every committed chunk waiting for the live lane."""
        refs = list(self.live)
        self.live.clear()
        self.live_ready.clear()
        return refs

    async def claim_live(self, refs: list[ChunkRef], max_batch: int) -> list[Batch]:
        """Give `refs` their seqs (merged per device up to `max_batch`)."""
        now_ms = int(self._clock() * 1000)
        # Ahead of the queued appends, like a receipt: these chunks are committed, and under
        # load a claim behind the queue waited as long as the queue is (writer.py).
        fut = self.writer.submit_urgent(lambda db: db.claim_ids(refs, max_batch, now_ms))
        return await asyncio.wrap_future(fut)

    async def claim_backlog(self, max_batch: int, limit: int = 1) -> list[Batch]:
        """Claim the oldest unclaimed chunks as up to `limit` batches."""
        now_ms = int(self._clock() * 1000)
        return await self.call(lambda db: db.claim_backlog(max_batch, now_ms, limit=limit))

    async def due(self, receipt_timeout: float, limit: int = 100) -> list[Batch]:
        """Batches whose receipt is overdue, to republish unchanged."""
        now_ms = int(self._clock() * 1000)
        return await self.call(lambda db: db.due(now_ms, int(receipt_timeout * 1000), limit))

    async def unclaim(self, seqs: list[int]) -> None:
        """Make these batches due for republishing now."""
        await self.call(lambda db: db.unclaim(seqs))

    async def ack(self, batches: list[tuple[int, str]]) -> int:
        """Delete each batch (seq, digest) whose payload had that digest; readings deleted.
        Ahead of every queued append: a receipt never waits behind load (writer.py)."""
        return await asyncio.wrap_future(self.writer.submit_urgent(lambda db: db.ack(batches)))

    async def stats(self) -> BufferStats:
        """Snapshot of contents and drop counts."""

        def snap(db: BufferDB) -> BufferStats:
            t = db.totals
            return BufferStats(
                chunks=t.chunks,
                readings=t.readings,
                nbytes=t.nbytes,
                oldest_ts=db.oldest_ts(),
                pending=dict(t.pending),
                dropped=dict(t.dropped),
                downsampled=dict(t.downsampled),
                in_flight=t.claimed,
                rejected=dict(t.rejected),
                disk_full_since=self.writer.disk_full_since,
                drop_spans={d: [(a, b, n) for a, b, n in s] for d, s in t.drop_spans.items()},
            )

        return await self.call(snap)
