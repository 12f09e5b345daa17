"""The SQLite buffer: durability, seqs across restarts, receipts, republish, bounds, corruption."""

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from edge_agent.buffer import Bounds, Buffer, Reading


def decode_readings(payload: bytes) -> list[Reading]:
    body = json.loads(payload)
    return [Reading(r["tag"], r["ts"], r["v"], r["q"]) for r in body["readings"]]


NO_AGE = Bounds(max_age=None)  # test timestamps are small numbers, not recent epoch ms


def readings(device_base: int, count: int) -> list[Reading]:
    return [Reading("t", device_base + i, float(i)) for i in range(count)]


async def wait_live(buf: Buffer, chunks: int) -> list:
    got: list = []
    async with asyncio.timeout(5):
        while len(got) < chunks:
            await buf.live_ready.wait()
            got += buf.take_live()
    return got


async def test_committed_chunks_reach_live_lane_and_ack_deletes(tmp_path: Path) -> None:
    async with Buffer(tmp_path / "b.db", bounds=NO_AGE) as buf:
        buf.append("m1", readings(1000, 10))
        buf.append("m2", readings(2000, 5))
        refs = await wait_live(buf, 2)
        batches = await buf.claim_live(refs, max_batch=1000)
        assert sorted((b.device, b.n) for b in batches) == [("m1", 10), ("m2", 5)]
        assert batches[0].seq < batches[1].seq
        # Claimed chunks are not claimed twice, by either lane.
        assert await buf.claim_live(refs, max_batch=1000) == []
        assert await buf.claim_backlog(1000) == []
        deleted = await buf.ack([(batches[0].seq, batches[0].digest)])
        assert deleted == batches[0].n
        stats = await buf.stats()
        assert stats.readings == 15 - batches[0].n


async def test_seq_strictly_increasing_across_restart_and_inflight_republished(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.db"
    async with Buffer(path, bounds=NO_AGE) as buf:
        buf.append("m1", readings(0, 3))
        refs = await wait_live(buf, 1)
        (first,) = await buf.claim_live(refs, 100)
        buf.append("m1", readings(100, 3))
        await buf.flush()
    async with Buffer(path, bounds=NO_AGE) as buf:
        # The in-flight batch of the previous run is due at once, same seq, same readings.
        (again,) = await buf.due(receipt_timeout=30)
        assert (again.seq, again.payload) == (first.seq, first.payload)
        (second,) = await buf.claim_backlog(100)
        assert second.seq > first.seq
        assert decode_readings(second.payload) == readings(100, 3)


async def test_receipt_timeout_republishes_same_seq(tmp_path: Path) -> None:
    now = [1000.0]
    async with Buffer(tmp_path / "b.db", bounds=NO_AGE, clock=lambda: now[0]) as buf:
        buf.append("m1", readings(0, 4))
        (batch,) = await buf.claim_live(await wait_live(buf, 1), 100)
        now[0] += 2.9
        assert await buf.due(receipt_timeout=3) == []
        now[0] += 0.2
        (again,) = await buf.due(receipt_timeout=3)
        assert (again.seq, again.payload) == (batch.seq, batch.payload)
        await buf.ack([(batch.seq, batch.digest)])
        now[0] += 10
        assert await buf.due(receipt_timeout=3) == []


async def test_backlog_merges_small_chunks_up_to_max_batch(tmp_path: Path) -> None:
    async with Buffer(tmp_path / "b.db", bounds=NO_AGE) as buf:
        for i in range(10):
            buf.append("m1", readings(i * 10, 10))
        await buf.flush()
        batches = await buf.claim_backlog(max_batch=35, limit=10)
        assert [b.n for b in batches] == [30, 30, 30, 10]
        all_ts = [r.ts for b in batches for r in decode_readings(b.payload)]
        assert all_ts == sorted(all_ts) == list(range(100))


async def test_bound_drops_oldest_with_exact_counts(tmp_path: Path) -> None:
    bounds = Bounds(max_bytes=20_000, max_age=None)
    async with Buffer(tmp_path / "b.db", bounds=bounds, commit_interval=0.01) as buf:
        for i in range(200):
            buf.append(f"m{i % 2}", readings(i * 100, 20))
        await buf.flush()
        await asyncio.sleep(0.05)
        buf.append("m0", readings(10**9, 1))  # a write after the flush triggers enforcement
        await asyncio.sleep(0.1)
        stats = await buf.stats()
        assert stats.nbytes <= 20_000
        total_dropped = sum(stats.dropped.values())
        assert total_dropped + stats.readings == 200 * 20 + 1
        # Oldest first: what remains is the newest chunks.
        batches = await buf.claim_backlog(10_000, limit=1000)
        kept = sorted(r.ts for b in batches for r in decode_readings(b.payload))
        assert kept[-1] == 10**9
        kept_chunks = (stats.readings - 1) // 20
        assert kept[:-1] == sorted(
            i * 100 + j for i in range(200 - kept_chunks, 200) for j in range(20)
        )
        assert stats.dropped["m0"] + stats.dropped["m1"] == total_dropped
        # Which readings went, by time, per device: one span each (the oldest chunks), counting
        # exactly what was dropped, from the first reading on.
        for device in ("m0", "m1"):
            [(first, last, n)] = stats.drop_spans[device]
            assert n == stats.dropped[device]
            assert first == (0 if device == "m0" else 100)
            assert first <= last < kept[0]
    async with Buffer(tmp_path / "b.db", bounds=bounds) as buf:
        assert (await buf.stats()).dropped == stats.dropped  # counts survive a restart


async def test_age_bound_drops_old_readings(tmp_path: Path) -> None:
    now = [10_000.0]
    bounds = Bounds(max_age=60.0)
    async with Buffer(tmp_path / "b.db", bounds=bounds, clock=lambda: now[0]) as buf:
        buf.append("m1", [Reading("t", 9_000_000, 1.0)])  # 1000 s old
        buf.append("m1", [Reading("t", 9_990_000, 1.0)])  # 10 s old
        await buf.flush()
        buf.append("m1", [Reading("t", 10_000_000, 1.0)])
        await asyncio.sleep(0.3)
        stats = await buf.stats()
        assert stats.dropped == {"m1": 1}
        assert stats.drop_spans == {"m1": [(9_000_000, 9_000_000, 1)]}
        assert stats.readings == 2


async def test_downsample_oldest_counts_what_it_summarised(tmp_path: Path) -> None:
    bounds = Bounds(max_bytes=60_000, max_age=None, on_full="downsample_oldest")
    async with Buffer(tmp_path / "b.db", bounds=bounds, commit_interval=0.01) as buf:
        for i in range(60):  # one reading per second, one chunk per minute
            buf.append("m1", [Reading("t", i * 60_000 + s * 1000, float(s)) for s in range(60)])
        await buf.flush()
        await asyncio.sleep(0.1)
        stats = await buf.stats()
        assert stats.nbytes <= 60_000
        assert stats.downsampled["m1"] > 0
        lost = stats.downsampled.get("m1", 0) + stats.dropped.get("m1", 0)
        assert stats.readings + lost == 3600


async def test_corrupt_file_is_moved_aside_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "b.db"
    path.write_bytes(b"this is not a database, it is a torn write" * 100)
    with caplog.at_level(logging.ERROR):
        async with Buffer(path, bounds=NO_AGE) as buf:
            assert buf.moved_aside is not None
            assert buf.moved_aside.exists()
            buf.append("m1", readings(0, 2))
            await buf.flush()
            assert (await buf.stats()).readings == 2
    assert "BUFFER CORRUPT" in caplog.text


async def test_readings_the_hub_would_refuse_are_counted_not_buffered(tmp_path: Path) -> None:
    async with Buffer(tmp_path / "b.db", bounds=NO_AGE) as buf:
        buf.append(
            "m1", [Reading("t", 1, 1.0), Reading("t", 2, float("nan")), Reading("t", 3, "x" * 5000)]
        )
        await buf.flush()
        stats = await buf.stats()
        assert stats.readings == 1
        assert stats.rejected == {"m1": 2}


async def test_backlog_finds_chunks_written_after_the_buffer_emptied(tmp_path: Path) -> None:
    """Ids must not be reused: the backlog lane remembers how far it claimed."""
    async with Buffer(tmp_path / "b.db", bounds=NO_AGE) as buf:
        for i in range(5):
            buf.append("m1", readings(i * 10, 10))
        await buf.flush()
        first = await buf.claim_backlog(10, limit=10)
        await buf.ack([(b.seq, b.digest) for b in first])
        buf.append("m1", readings(1000, 10))
        await buf.flush()
        (again,) = await buf.claim_backlog(10, limit=10)
        assert decode_readings(again.payload) == readings(1000, 10)


async def test_producers_wait_when_the_writer_is_far_behind(tmp_path: Path) -> None:
    async with Buffer(tmp_path / "b.db", bounds=NO_AGE, queue_high=100) as buf:
        buf.append("m1", readings(0, 150))
        assert buf.queued == 150
        waiter = asyncio.create_task(buf.wait_room())
        async with asyncio.timeout(5):
            await waiter  # released once the writer has caught up
        assert buf.queued <= 50
        await buf.flush()
        assert (await buf.stats()).readings == 150


async def test_a_receipt_goes_ahead_of_every_queued_append(tmp_path: Path) -> None:
    # Under load thousands of appends wait for the one writer thread; a receipt queued behind
    # them would leave its batch to be republished. It runs before all of them instead.
    async with Buffer(tmp_path / "b.db", bounds=NO_AGE) as buf:
        buf.append("m1", readings(1000, 10))
        batch = (await buf.claim_live(await wait_live(buf, 1), max_batch=1000))[0]
        order: list[str] = []
        gate = asyncio.Event()
        loop = asyncio.get_running_loop()

        def slow(db: object) -> None:
            order.append("append")
            time.sleep(0.01)  # an encode of a big chunk

        def blocked(db: object) -> None:
            # Holds the writer until the receipt is queued behind 200 appends.
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(5)

        buf.writer.post(blocked)
        for _ in range(200):
            buf.writer.post(slow)
        receipt = asyncio.ensure_future(buf.ack([(batch.seq, batch.digest)]))
        await asyncio.sleep(0.05)
        gate.set()
        assert await asyncio.wait_for(receipt, 5) == 10
        assert order.count("append") < 20, "the receipt waited behind the appends"
