"""Per-site live channels against a real Redis: an instance receives the updates of the sites its
clients watch and no others, joins a site's channel with its first client and leaves it with
the last, and another instance's client of another site still gets every update of it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from bridgetest import unique
from prometheus_client import CollectorRegistry

import wire
from hub.api.v1.wiring import ApiWiring
from hub.bridge.metrics import BridgeMetrics
from hub.bridge.redis import RedisLive
from hub.config import HubConfig, RedisConfig
from hub.live import Subscriber, Update
from hub.storage import TelemetryBatch

ROUNDS = 50


class Seen(Subscriber):
    """A local client that records the timestamps it got, per machine."""

    def __init__(self) -> None:
        super().__init__()
        self.ts: dict[str, list[int]] = {}

    def push(self, update: Update) -> None:
        self.ts.setdefault(update.machine, []).extend(r["ts"] for r in update.readings)


class Instance:
    """One hub instance's live path: its Redis shell and its API wiring (fan-out + relay)."""

    def __init__(self, cfg: RedisConfig) -> None:
        self.registry = CollectorRegistry()
        self.live = RedisLive(cfg, BridgeMetrics(self.registry))
        self.wiring = ApiWiring(
            HubConfig(jwt_secret=os.urandom(24).hex(), redis=cfg), self.registry, self.live
        )

    def messages(self, direction: str) -> int:
        value = self.registry.get_sample_value(
            "millstream_redis_live_messages_total", {"direction": direction}
        )
        return int(value or 0)

    def watch(self, client: Seen, *machines: str) -> None:
        self.wiring.fanout.add(client)
        for machine in machines:
            self.wiring.fanout.subscribe(client, machine, None)


@contextlib.asynccontextmanager
async def _running(instances: list[Instance]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(i.live.run(stop)) for i in instances]
    tasks += [asyncio.create_task(i.wiring.run(stop)) for i in instances]
    try:
        for i in instances:
            async with asyncio.timeout(30):
                await i.live.subscribed.wait()
        yield
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _batch(machine: str, ts: int) -> TelemetryBatch:
    site, line, name = machine.split("/")
    return TelemetryBatch(site, line, name, "ag", ts, [wire.Reading(tag="t", ts=ts, v=float(ts))])


async def _until(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll `check` until true (a liveness bound, not a measure)."""
    for _ in range(int(timeout_s / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def _subscribed(live: RedisLive) -> None:
    async with asyncio.timeout(30):
        await live.subscribed.wait()


async def test_an_instance_receives_only_the_sites_its_clients_watch(redis: Any) -> None:
    cfg = RedisConfig(url=redis.url, channel=unique("ch"), key_prefix=unique("k") + ":")
    a, b, c = unique("a"), unique("b"), unique("c")
    a1, a2, b1, c1 = f"{a}/l1/m1", f"{a}/l1/m2", f"{b}/l1/m1", f"{c}/l1/m1"
    writer, on_a, on_b = Instance(cfg), Instance(cfg), Instance(cfg)
    client_a, client_b = Seen(), Seen()
    on_a.watch(client_a, a1)  # a2 is of the same site, watched by no one
    on_b.watch(client_b, b1)  # nobody watches site c
    async with _running([writer, on_a, on_b]):
        assert on_a.live.channels == {f"{cfg.channel}:{a}"}
        assert on_b.live.channels == {f"{cfg.channel}:{b}"}
        assert writer.live.channels == frozenset()
        for ts in range(ROUNDS):
            # a1 last: once its last update is in, every earlier one on a's channel is too.
            writer.wiring.on_validated([_batch(m, ts) for m in (a2, c1, b1, a1)])
        await _until(lambda: client_a.ts.get(a1, [])[-1:] == [ROUNDS - 1])
        await _until(lambda: client_b.ts.get(b1, [])[-1:] == [ROUNDS - 1])

        assert writer.messages("published") == 4 * ROUNDS
        # Without per-site channels each instance received all 4 × ROUNDS (its own included).
        assert on_a.messages("received") == 2 * ROUNDS  # a1 and a2: site a's channel
        assert on_b.messages("received") == ROUNDS  # b1 only
        assert writer.messages("received") == 0
        assert client_a.ts == {a1: list(range(ROUNDS))}  # every reading, in order
        assert client_b.ts == {b1: list(range(ROUNDS))}

        # The last client of site a leaves: its instance leaves a's channel...
        on_a.wiring.fanout.remove(client_a)
        await _subscribed(on_a.live)
        assert on_a.live.channels == frozenset()
        writer.wiring.on_validated([_batch(m, ROUNDS) for m in (a1, b1)])
        await _until(lambda: client_b.ts[b1][-1] == ROUNDS)
        assert on_a.messages("received") == 2 * ROUNDS

        # ...and joins it again with the next one, who gets what is announced from then on.
        again = Seen()
        on_a.watch(again, a1)
        await _subscribed(on_a.live)
        writer.wiring.on_validated([_batch(a1, ROUNDS + 1)])
        await _until(lambda: again.ts.get(a1) == [ROUNDS + 1])
        assert on_a.messages("received") == 2 * ROUNDS + 1
        assert on_b.messages("received") == ROUNDS + 1


async def test_a_reconnected_subscriber_joins_the_watched_channels_again(
    redis_factory: Any,
) -> None:
    server = redis_factory()
    cfg = RedisConfig(url=server.url, channel=unique("ch"))
    site = unique("s")
    writer, reader = Instance(cfg), Instance(cfg)
    client = Seen()
    reader.watch(client, f"{site}/l1/m1")
    async with _running([writer, reader]):
        await asyncio.to_thread(server.stop)
        await _until(lambda: not reader.live.health()["subscribed"])
        assert reader.live.channels == frozenset()
        await asyncio.to_thread(server.start)
        await _subscribed(reader.live)
        assert reader.live.channels == {f"{cfg.channel}:{site}"}

        # Pub/sub keeps nothing for a subscriber still reconnecting: announce until one lands.
        async def landed() -> bool:
            writer.wiring.on_validated([_batch(f"{site}/l1/m1", 7)])
            await asyncio.sleep(0.05)
            return bool(client.ts)

        async with asyncio.timeout(60):
            while not await landed():
                pass
