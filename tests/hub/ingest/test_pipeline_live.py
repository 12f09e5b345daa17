"""The ingest pipeline's live announcements: on validation (before commit), in receive order, and
small payloads validated on the event loop while large ones go to the worker processes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from hubtest import eventually, migrate, now_ms, telemetry

from hub.ingest.classify import classify
from hub.ingest.message import Incoming
from hub.ingest.pipeline import INLINE_MAX_BYTES, IngestPipeline
from hub.ingest.workers import worker_pool
from hub.metrics import HubMetrics
from hub.storage import TelemetryBatch, open_storage

SMALL = 10  # readings: ~0.7 KiB, validated on the event loop
LARGE = 200  # readings: ~13 KiB, validated by a worker process


class CountingPool(Executor):
    """A real worker pool that counts the jobs handed to it."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.jobs = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.jobs += 1
        return self.inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.inner.shutdown(wait, cancel_futures=cancel_futures)


class Recorder:
    """What the pipeline announced and committed, in call order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.acked: list[int] = []

    def validated(self, batches: Sequence[TelemetryBatch]) -> None:
        self.events.extend(("validated", b.seq) for b in batches)

    def committed(self, batches: Sequence[TelemetryBatch]) -> None:
        self.events.extend(("committed", b.seq) for b in batches)

    def seqs(self, kind: str) -> list[int]:
        return [seq for k, seq in self.events if k == kind]


@contextlib.asynccontextmanager
async def running_pipeline(
    tmp_path: Path, rec: Recorder, flush_ms: int, parser: Executor | None = None
) -> AsyncIterator[IngestPipeline]:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    await migrate(url)
    async with open_storage(url) as storage:
        pipeline = IngestPipeline(
            storage,
            classify=classify,
            ack=lambda msgs: rec.acked.extend(m.mid for m in msgs),
            on_committed=rec.committed,
            on_validated=rec.validated,
            metrics=HubMetrics(),
            flush_ms=flush_ms,
            parser=parser,
        )
        task = asyncio.create_task(pipeline.run())
        try:
            yield pipeline
        finally:
            pipeline.stop()
            await task


T0 = now_ms() - 60_000


def message(seq: int, readings: int) -> Incoming:
    payload = telemetry("src", seq, T0 + seq * 1000, readings)
    return Incoming("ms/v1/s/l1/m1/telemetry", payload, 1, seq + 1, now_ms())


async def test_readings_are_announced_live_when_validated_before_their_commit(
    tmp_path: Path,
) -> None:
    rec = Recorder()
    async with running_pipeline(tmp_path, rec, flush_ms=300) as pipeline:
        pipeline.submit(message(0, SMALL))
        # Validated on arrival: announced at once, while the batch waits out its flush window.
        assert rec.events == [("validated", 0)]
        assert rec.acked == []

        async def committed() -> bool:
            return rec.seqs("committed") == [0]

        await eventually(committed, timeout_s=10)
    assert rec.events == [("validated", 0), ("committed", 0)]
    assert rec.acked == [1]


async def test_announcements_keep_receive_order_when_workers_finish_out_of_order(
    tmp_path: Path,
) -> None:
    assert len(message(0, SMALL).payload) <= INLINE_MAX_BYTES < len(message(0, LARGE).payload)
    rec = Recorder()
    pool = CountingPool(worker_pool(1))
    try:
        async with running_pipeline(tmp_path, rec, flush_ms=20, parser=pool) as pipeline:
            sizes = [LARGE, SMALL, SMALL, LARGE, SMALL, LARGE, LARGE, SMALL]
            for seq, size in enumerate(sizes):
                pipeline.submit(message(seq, size))
            # The small ones were validated at once but wait for the large one received first.
            assert rec.seqs("validated") == []

            async def all_committed() -> bool:
                return len(rec.seqs("committed")) == len(sizes)

            await eventually(all_committed, timeout_s=30)
    finally:
        pool.shutdown()
    assert rec.seqs("validated") == list(range(len(sizes)))
    assert rec.seqs("committed") == list(range(len(sizes)))
    assert pool.jobs == sizes.count(LARGE)  # only large payloads paid for the hand-off
    for seq in range(len(sizes)):  # each reading was live before it was stored
        assert rec.events.index(("validated", seq)) < rec.events.index(("committed", seq))


async def test_an_oversized_payload_is_refused_at_once_and_never_goes_to_a_worker(
    tmp_path: Path,
) -> None:
    """Issue 18: 10 MiB payloads pickled to a worker only to be refused for their size held up
    every other publisher; the size alone refuses them, in the main process, at once."""
    rec = Recorder()
    pool = CountingPool(worker_pool(1))
    try:
        async with running_pipeline(tmp_path, rec, flush_ms=20, parser=pool) as pipeline:
            huge = Incoming("ms/v1/s/l1/m1/telemetry", b"x" * (10 << 20), 1, 1, now_ms())
            pipeline.submit(huge)
            pipeline.submit(message(1, SMALL))
            # Refused on submit: the small message behind it is announced without waiting.
            assert rec.seqs("validated") == [1]

            async def committed() -> bool:
                return rec.seqs("committed") == [1] and rec.acked == [1, 2]

            await eventually(committed, timeout_s=10)
    finally:
        pool.shutdown()
    assert pool.jobs == 0
