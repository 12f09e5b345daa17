"""The publisher against a real Mosquitto, with a receipt responder standing in for the hub."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiomqtt
import pytest
from mqtt_harness import Broker, JsonContract, Responder, eventually

from edge_agent.buffer import Bounds, Buffer, Reading
from edge_agent.publish import Publisher, PublisherSettings


def settings(broker: Broker, **kw: object) -> PublisherSettings:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": broker.port,
        "client_id": "agent-1",
        "reconnect_min": 0.1,
        "reconnect_max": 0.5,
        "receipt_timeout": 30.0,
    }
    base.update(kw)
    return PublisherSettings(**base)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(path: Path, s: PublisherSettings) -> AsyncIterator[tuple[Buffer, Publisher]]:
    contract = JsonContract("agent-1")
    async with Buffer(path, bounds=Bounds(max_age=None), encoder=contract.encode_batch) as buf:
        pub = Publisher(s, buf, contract)
        task = asyncio.create_task(pub.run(), name="publisher")
        try:
            yield buf, pub
        finally:
            pub.stop()
            async with asyncio.timeout(10):
                await task


def fill(buf: Buffer, device: str, start: int, count: int, chunk: int = 50) -> None:
    for base in range(start, start + count, chunk):
        buf.append(
            device,
            [Reading("t", ts, float(ts)) for ts in range(base, min(base + chunk, start + count))],
        )


async def wait_empty(buf: Buffer) -> None:
    async def empty() -> bool:
        return (await buf.stats()).readings == 0

    await eventually(empty)


def published(pub: Publisher, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return pub.stats.published_readings >= n

    return check


@pytest.mark.parametrize("protocol", ["mqttv311", "mqttv5"])
async def test_receipts_delete_rows_and_everything_arrives(
    broker: Broker, tmp_path: Path, protocol: str
) -> None:
    s = settings(broker, protocol=protocol)
    async with Responder(broker) as hub, running(tmp_path / "b.db", s) as (buf, pub):
        fill(buf, "m1", 0, 2000)
        fill(buf, "m2", 0, 1000)
        await hub.wait_for(lambda: hub.total() == 3000)
        await wait_empty(buf)
        assert pub.stats.acked_readings == 3000
        assert hub.readings["m1"] == {("t", ts) for ts in range(2000)}
        seqs = hub.seqs_seen
        assert len(seqs) == len(set(seqs))


async def test_receipts_off_deletes_on_puback(broker: Broker, tmp_path: Path) -> None:
    async with running(tmp_path / "b.db", settings(broker, receipts=False)) as (buf, pub):
        fill(buf, "m1", 0, 500)
        await wait_empty(buf)
        assert pub.stats.published_readings == 500


async def test_missing_receipt_republishes_same_seq(broker: Broker, tmp_path: Path) -> None:
    async with (
        Responder(broker) as hub,
        running(tmp_path / "b.db", settings(broker, receipt_timeout=1.0)) as (buf, pub),
    ):
        hub.suppress = True
        fill(buf, "m1", 0, 100, chunk=100)
        await hub.wait_for(lambda: len(hub.batches) >= 2)
        first, again = hub.batches[0], hub.batches[1]
        assert again["seq"] == first["seq"]
        assert again["readings"] == first["readings"]
        assert (await buf.stats()).readings == 100  # still held: no receipt yet
        hub.suppress = False
        await wait_empty(buf)
        assert pub.stats.republished_batches >= 1


async def test_no_hub_buffer_holds_everything(broker: Broker, tmp_path: Path) -> None:
    async with running(tmp_path / "b.db", settings(broker)) as (buf, pub):
        fill(buf, "m1", 0, 300)
        await eventually(published(pub, 300))
        stats = await buf.stats()
        assert stats.readings == 300
        assert stats.in_flight == 300
        assert pub.stats.receipts == 0


async def test_broker_down_at_start_then_up_drains(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")
    # The agent may reconnect before the stand-in hub has subscribed (a loaded CI machine did):
    # its first batches then reach nobody and go again after receipt_timeout, as with a real
    # hub that comes up later; kept short so that is seconds, not the 30 s the test waits.
    s = settings(broker, receipt_timeout=2.0)
    async with running(tmp_path / "b.db", s) as (buf, pub):
        fill(buf, "m1", 0, 1000)
        await asyncio.sleep(0.5)
        assert not pub.stats.connected
        assert pub.stats.last_error
        broker.start()
        try:
            async with Responder(broker) as hub:
                await hub.wait_for(lambda: hub.total() == 1000)
                await wait_empty(buf)
        finally:
            broker.kill()


async def test_volatile_broker_restart_after_puback_before_receipt(
    volatile_broker: Broker, tmp_path: Path
) -> None:
    """Mosquitto without persistence loses queued messages on restart; receipts save us."""
    broker = volatile_broker
    s = settings(broker, receipt_timeout=2.0)
    async with running(tmp_path / "b.db", s) as (buf, pub):
        # No hub yet: the broker PUBACKs and drops the messages (no subscriber session).
        fill(buf, "m1", 0, 1000)
        await eventually(published(pub, 1000))
        broker.kill()
        broker.start()
        async with Responder(broker) as hub:
            await hub.wait_for(lambda: hub.total() == 1000)
            await wait_empty(buf)
            assert hub.readings["m1"] == {("t", ts) for ts in range(1000)}


async def test_birth_status_and_clean_offline(broker: Broker, tmp_path: Path) -> None:
    async with running(tmp_path / "b.db", settings(broker)) as (_buf, pub):
        pub.set_status(json.dumps({"v": 1, "state": "online"}).encode())
        await asyncio.sleep(0.5)
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.subscribe("ms/v1/agents/agent-1/status", qos=1)
        async with asyncio.timeout(5):
            msg = await anext(aiter(client.messages))
    assert msg.retain
    assert isinstance(msg.payload, bytes)
    assert json.loads(msg.payload)["state"] == "offline"


async def retained(broker: Broker, topic: str) -> bytes | None:
    """The retained payload on `topic` as a new subscriber gets it (None if there is none)."""
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.subscribe(topic, qos=1)
        try:
            async with asyncio.timeout(1):
                async for msg in client.messages:
                    # A message published while we subscribe arrives live, not as retained.
                    if msg.retain and isinstance(msg.payload, bytes):
                        return msg.payload
        except TimeoutError:
            pass
    return None


async def test_retained_messages_on_connect_on_change_and_after_broker_restart(
    volatile_broker: Broker, tmp_path: Path
) -> None:
    topic = "ms/v1/s/l/m1/meta"
    async with running(tmp_path / "r.db", settings(volatile_broker)) as (_buf, pub):
        pub.set_retained({topic: b"first"})

        async def holds(payload: bytes) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return await retained(volatile_broker, topic) == payload

            return check

        await eventually(await holds(b"first"))
        pub.set_retained({topic: b"second"})  # while connected: published now
        await eventually(await holds(b"second"))
        # A broker without persistence forgets retained messages; the next session resends.
        volatile_broker.kill()
        volatile_broker.start()
        await eventually(await holds(b"second"))


async def backlog_of(path: Path, n: int) -> None:
    """`n` readings committed before the publisher connects: its backlog."""
    contract = JsonContract("agent-1")
    async with Buffer(path, bounds=Bounds(max_age=None), encoder=contract.encode_batch) as buf:
        fill(buf, "m1", 0, n, chunk=100)
        await buf.flush()


async def test_a_hub_that_receipts_nothing_gets_one_backlog_batch(
    broker: Broker, tmp_path: Path
) -> None:
    """Slow start: a fleet reconnecting at once must not queue its first bursts in the broker
    for a hub whose drain budget does not know it yet; the rest waits in the buffer."""
    s = settings(broker, backlog_rate=2_000.0, max_batch=100, receipt_timeout=4.0)
    await backlog_of(tmp_path / "b.db", 5_000)
    async with Responder(broker) as hub:
        hub.suppress = True
        async with running(tmp_path / "b.db", s) as (buf, _pub):
            await hub.wait_for(lambda: hub.total() >= 100)
            await asyncio.sleep(1.5)  # the pace alone would allow 3,000 more by now
            assert hub.total() == 100
            hub.suppress = False
            await wait_empty(buf)  # the first one again after its timeout, then the rest
            assert hub.readings["m1"] == {("t", ts) for ts in range(5_000)}


async def test_the_backlog_keeps_a_few_seconds_of_its_pace_unreceipted(
    broker: Broker, tmp_path: Path
) -> None:
    """Receipts that take a second (a hub committing slower than its budget said): the backlog
    grows what it has out by what is receipted, up to `backlog_ahead_s` of its pace, and holds
    the rest in the buffer rather than in the broker's queue, where it would outwait the
    receipt timeout."""
    s = settings(broker, backlog_rate=2_000.0, backlog_ahead_s=0.5, max_batch=100)
    await backlog_of(tmp_path / "b.db", 5_000)
    out: list[int] = []
    async with Responder(broker, delay=1.0) as hub, running(tmp_path / "b.db", s) as (buf, pub):
        while (await buf.stats()).readings:
            out.append(pub.backlog_unreceipted)
            await asyncio.sleep(0.02)
        assert hub.readings["m1"] == {("t", ts) for ts in range(5_000)}
    # 2,000/s for 1 s would keep 2,000 out; half a second of it is 1,000.
    assert 500 <= max(out) <= 1_000
    assert pub.stats.republished_batches == 0


async def test_a_slow_pace_claims_no_more_than_it_sends_before_the_receipt_timeout(
    broker: Broker, tmp_path: Path
) -> None:
    """A claim starts a batch's receipt timeout: claimed a window's worth at once but paced at
    a few batches a second (a drain budget), the last ones would be overdue before they were
    sent, and sent twice."""
    s = settings(broker, backlog_rate=200.0, max_batch=100, receipt_timeout=2.0)
    await backlog_of(tmp_path / "b.db", 1_000)  # 5 s at the pace
    async with (
        Responder(broker, delay=0.3) as hub,
        running(tmp_path / "b.db", s) as (buf, pub),
    ):
        await wait_empty(buf)
        assert hub.total() == 1_000
    assert pub.stats.republished_batches == 0
    assert len(hub.seqs_seen) == len(set(hub.seqs_seen)) == 10


async def test_a_reconnecting_backlog_claims_no_more_than_may_be_out(
    broker: Broker, tmp_path: Path
) -> None:
    """Right after connecting (before any drain budget arrives) the pace is backlog_rate, which
    would claim a window's worth; the slow start then sends them over several receipt round
    trips, the last ones past their receipt timeout, counted from the claim: sent twice."""
    s = settings(broker, max_batch=100, receipt_timeout=3.0)
    await backlog_of(tmp_path / "b.db", 3_000)
    async with (
        Responder(broker, delay=1.0) as hub,
        running(tmp_path / "b.db", s) as (buf, pub),
    ):
        await wait_empty(buf)
        assert hub.total() == 3_000
    assert pub.stats.republished_batches == 0
