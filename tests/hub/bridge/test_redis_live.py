"""Redis latest values and live fan-out against a real Redis: forward-only, shared, self-healing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis
from bridgetest import unique

import wire
from hub.bridge.redis import Latest, RedisLive, Update
from hub.config import RedisConfig
from hub.errors import LiveUnavailable
from hub.storage import TelemetryBatch


def _batch(machine: str, seq: int, points: dict[str, tuple[int, float]]) -> TelemetryBatch:
    readings = [wire.Reading(tag=t, ts=ts, v=v, q="good") for t, (ts, v) in points.items()]
    return TelemetryBatch("s1", "l1", machine, "ag", seq, readings)


@contextlib.asynccontextmanager
async def _running(cfg: RedisConfig) -> AsyncIterator[RedisLive]:
    live = RedisLive(cfg)
    live.watch(frozenset({"s1"}))  # as if a client of this instance watched a machine of s1
    stop = asyncio.Event()
    task = asyncio.create_task(live.run(stop))
    try:
        async with asyncio.timeout(30):
            await live.subscribed.wait()
        yield live
    finally:
        stop.set()
        await task


async def _until(check: Callable[[], Any], timeout_s: float = 30.0) -> None:
    """Poll `check` until true (a liveness bound, not a measure)."""
    for _ in range(int(timeout_s / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def _collect(live: RedisLive, into: list[Update]) -> asyncio.Task[None]:
    async def run() -> None:
        async for update in live.subscribe_updates():
            into.append(update)

    return asyncio.create_task(run())


async def test_latest_moves_forward_and_a_second_instance_gets_updates(redis: Any) -> None:
    cfg = RedisConfig(url=redis.url, channel=unique("ch"), key_prefix=unique("k") + ":")
    m = unique("m")
    async with _running(cfg) as hub_a, _running(cfg) as hub_b:
        seen: list[Update] = []
        collector = _collect(hub_a, seen)
        await asyncio.sleep(0)  # let the collector register before anything is published
        hub_a.publish([_batch(m, 1, {"a": (100, 1.0), "b": (100, 2.0)})])
        hub_a.publish([_batch(m, 2, {"a": (200, 3.0)}), _batch(m, 3, {"b": (50, 9.0)})])

        async def settled() -> bool:
            got = await hub_b.latest("s1", "l1", m)
            return got.get("a") == Latest(3.0, 200, "good")

        await _until(settled)
        # ts 50 for b arrived after ts 100: the older value never replaces the newer.
        assert await hub_b.latest("s1", "l1", m) == {
            "a": Latest(3.0, 200, "good"),
            "b": Latest(2.0, 100, "good"),
        }
        # A late, older reading written by another instance does not go back either. (Its
        # announcement goes out in the same Redis round trip as the write: once hub_a has it,
        # the write happened.)
        late = [_batch(m, 4, {"a": (150, 7.0)})]
        hub_b.publish(late)
        hub_b.announce(late)
        await _until(lambda: _received(seen, m, "a", 150))
        assert (await hub_a.latest("s1", "l1", m))["a"] == Latest(3.0, 200, "good")
        assert all(u.machine == f"s1/l1/{m}" for u in seen)
        assert all(u.origin == hub_b.origin for u in seen)  # hub_a never gets its own back
        collector.cancel()


async def test_announced_updates_carry_every_reading_to_the_other_instances(redis: Any) -> None:
    # What a client of the receiving instance gets (every reading, in order), a client of any
    # other instance gets too: not only the newest value per tag.
    cfg = RedisConfig(url=redis.url, channel=unique("ch"), key_prefix=unique("k") + ":")
    m = unique("m")
    async with _running(cfg) as hub_a, _running(cfg) as hub_b:
        seen: list[Update] = []
        collector = _collect(hub_b, seen)
        await asyncio.sleep(0)
        batches = [_batch(m, 1, {"a": (100, 1.0)}), _batch(m, 2, {"a": (101, 2.0)})]
        hub_a.announce(batches)
        await _until(lambda: _received(seen, m, "a", 101))
        [update] = seen
        assert update.readings == (("a", 100, 1.0, "good"), ("a", 101, 2.0, "good"))
        collector.cancel()


async def _received(seen: list[Update], machine: str, tag: str, ts: int) -> bool:
    return any((r[0], r[1]) == (tag, ts) for u in seen if machine in u.machine for r in u.readings)


async def test_redis_down_ingest_side_never_blocks_and_latest_recovers(
    redis_factory: Any,
) -> None:
    server = redis_factory()
    cfg = RedisConfig(url=server.url)
    m = unique("m")
    async with _running(cfg) as live, _running(cfg) as other:
        seen: list[Update] = []
        collector = _collect(other, seen)
        first = [_batch(m, 1, {"a": (1, 1.0)})]
        live.publish(first)
        live.announce(first)
        await _until(lambda: _received(seen, m, "a", 1))

        await asyncio.to_thread(server.stop)
        # publish() only records; it returns at once with Redis gone, batch after batch.
        for seq in range(2, 200):
            live.publish([_batch(m, seq, {"a": (seq, float(seq)), "b": (seq, -float(seq))})])
        await _until(lambda: _not_ok(live))
        assert live.health()["latest_writer"] == "unavailable"

        await asyncio.to_thread(server.start)
        await _until(
            lambda: _latest_is(
                other, m, {"a": Latest(199.0, 199, "good"), "b": Latest(-199.0, 199, "good")}
            ),
            timeout_s=60,
        )

        # The subscriber came back by itself too. Pub/sub keeps nothing for a subscriber that
        # is still reconnecting, so publish until one update lands.
        async def resubscribed() -> bool:
            live.announce([_batch(m, 300, {"a": (300, 0.5)})])
            return await _received(seen, m, "a", 300)

        await _until(resubscribed, timeout_s=60)
        collector.cancel()


async def _not_ok(live: RedisLive) -> bool:
    return not live.writer_ok


async def _latest_is(live: RedisLive, m: str, want: dict[str, Latest]) -> bool:
    try:
        return await live.latest("s1", "l1", m) == want
    except LiveUnavailable:  # Redis still coming back
        return False


async def test_a_second_cancellation_while_stopping_still_closes_every_connection(
    redis_factory: Any,
) -> None:
    """A task group that aborts, or a loop torn down, cancels a stopping RedisLive once more.
    Its connections must be closed all the same: one left open is only found by the garbage
    collector, as a ResourceWarning failing whichever test runs then."""
    server = redis_factory()
    admin = aioredis.from_url(server.url)
    try:
        for spins in range(25):  # loop iterations between the two cancellations
            live = RedisLive(RedisConfig(url=server.url))
            task = asyncio.create_task(live.run(asyncio.Event()))
            async with asyncio.timeout(30):
                await live.subscribed.wait()
            await live.latest("s1", "l1", "m")  # a pooled connection besides the subscriber's
            task.cancel()
            for _ in range(spins):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await _until(lambda: _only_client(admin))
    finally:
        await admin.aclose()


async def _only_client(admin: aioredis.Redis) -> bool:
    return (await admin.info("clients"))["connected_clients"] == 1
