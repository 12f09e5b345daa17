"""Ingest against real Mosquitto and PostgreSQL: dedup, dead letters, receipts, load split."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
from hubtest import (
    MqttTestClient,
    count_readings,
    eventually,
    hub_config,
    migrate,
    now_ms,
    pg_fetch,
    running_hub,
    telemetry,
    unique,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

DAY = 86_400_000


async def rollup_count(dsn: str, site: str, table: str = "rollup_minute") -> int:
    rows = await pg_fetch(
        dsn,
        f"SELECT coalesce(sum(b.count), 0) FROM {table} b JOIN series s ON s.id = b.series_id"
        " WHERE s.site = $1",
        site,
    )
    return int(rows[0][0])


async def test_replays_and_overlaps_are_stored_once(
    mosquitto: Any, pg_dsn: str, mqtt_client: MqttTestClient
) -> None:
    await migrate(pg_dsn)
    site, src = unique("s"), unique("src")
    topic = f"ms/v1/{site}/l1/m1/telemetry"
    mqtt_client.subscribe_receipts(src)
    t0 = now_ms() - 60_000
    async with running_hub(hub_config(mosquitto.url, pg_dsn)):
        first = telemetry(src, 1, t0, 500)
        for _ in range(3):
            await mqtt_client.apublish(topic, first)
        # Batch 2 overlaps the second half of batch 1.
        await mqtt_client.apublish(topic, telemetry(src, 2, t0 + 250, 500))

        async def receipted() -> bool:
            return {1, 2} <= mqtt_client.receipted(src)

        await eventually(receipted)
        assert await count_readings(pg_dsn, site) == 750
    # Rollups count only rows actually inserted: replays did not inflate them.
    assert await rollup_count(pg_dsn, site) == 750
    assert await rollup_count(pg_dsn, site, "rollup_hour") == 750


def _corpus(site: str, src: str, now: int) -> list[tuple[str, bytes, set[str]]]:
    """At least 30 malformed messages, each with the reason codes wire may give it."""
    topic = f"ms/v1/{site}/l1/m1/telemetry"

    def batch(**reading: Any) -> bytes:
        r = {"tag": "t", "ts": now, "v": 1.0, "q": "good"} | reading
        r = {k: v for k, v in r.items() if v is not ...}
        return json.dumps({"v": 1, "src": src, "seq": 1, "readings": [r]}).encode()

    def raw_v(text: str) -> bytes:
        return (
            f'{{"v":1,"src":"{src}","seq":1,"readings":[{{"tag":"t","ts":{now},"v":{text},'
            f'"q":"good"}}]}}'
        ).encode()

    valid = telemetry(src, 1, now, 3)
    many = [{"tag": "t", "ts": now + i, "v": 1.0, "q": "good"} for i in range(10_001)]
    big = b'{"v":1,"src":"' + src.encode() + b'","seq":1,"readings":[],"pad":"' + b"x" * (2 << 20)
    big += b'"}'
    nested = b"[" * 100_000 + b"]" * 100_000
    nested_in_reading = raw_v("[" * 5000 + "]" * 5000)
    return [
        (topic, valid[:40], {"bad_json"}),
        (topic, b"", {"bad_json"}),
        (topic, b"hello", {"bad_json"}),
        (topic, b"[1, 2, 3]", {"bad_field", "bad_json"}),
        (topic, b'{"v": 2, "src": "x", "seq": 1, "readings": []}', {"bad_version"}),
        (topic, b'{"v": "1", "src": "x", "seq": 1, "readings": []}', {"bad_version"}),
        (topic, b'{"v": 1, "seq": 1, "readings": []}', {"bad_field"}),
        (topic, b'{"v": 1, "src": "x", "seq": "1", "readings": []}', {"bad_field"}),
        (topic, b'{"v": 1, "src": "x", "seq": 1, "readings": {}}', {"bad_field"}),
        (topic, batch(ts=now + 0.5), {"bad_field"}),
        (topic, batch(ts=True), {"bad_field"}),
        (topic, batch(v=None), {"bad_field"}),
        (topic, batch(v={"a": 1}), {"bad_field"}),
        (topic, raw_v("NaN"), {"not_finite"}),
        (topic, raw_v("Infinity"), {"not_finite"}),
        (topic, raw_v("-Infinity"), {"not_finite"}),
        (topic, raw_v("1e999"), {"not_finite"}),
        (
            topic,
            json.dumps({"v": 1, "src": src, "seq": 1, "readings": many}).encode(),
            {"too_many_readings"},
        ),
        (topic, big, {"too_large"}),
        (f"ms/v1/{site}/bad seg/m1/telemetry", valid, {"bad_topic"}),
        (f"ms/v1/{site}/{'x' * 65}/m1/telemetry", valid, {"bad_topic"}),
        (f"ms/v1/agents/{site}/m1/telemetry", valid, {"bad_topic"}),
        (f"ms/v1/receipts/{site}/m1/telemetry", valid, {"bad_topic"}),
        (f"ms/v1/{site}/l1/m.1/telemetry", valid, {"bad_topic"}),
        (topic, batch(ts=now - 365 * DAY), {"ts_out_of_range"}),
        (topic, batch(ts=now + 3_600_000), {"ts_out_of_range"}),
        (topic, batch(q="excellent"), {"bad_quality"}),
        (topic, batch(q=1), {"bad_field", "bad_quality"}),
        (topic, b"\xff\xfe\x00garbage", {"bad_utf8"}),
        (topic, valid.replace(b'"t', b'"\xe9t', 1), {"bad_utf8"}),
        (topic, nested, {"bad_json"}),
        (topic, nested_in_reading, {"bad_json", "bad_field"}),
        # wire currently reports an over-long string as bad_field; either names the problem.
        (topic, batch(v="x" * 2000), {"string_too_long", "bad_field"}),
        (topic, batch(tag=...), {"bad_field"}),
        (topic, batch(tag="has space"), {"bad_field"}),
        (topic, batch(extra=1), {"bad_field"}),
        (topic, raw_v('"\\ud800"'), {"bad_json"}),
        (topic, b'{"v": 1, "src": "x", "seq": -1, "readings": []}', {"bad_field"}),
    ]


async def test_malformed_corpus_goes_to_dead_letters_and_valid_traffic_is_stored(
    mosquitto: Any, pg_dsn: str, mqtt_client: MqttTestClient
) -> None:
    await migrate(pg_dsn)
    site, src = unique("s"), unique("src")
    topic = f"ms/v1/{site}/l1/m1/telemetry"
    now = now_ms()
    corpus = _corpus(site, src, now)
    assert len(corpus) >= 30
    gaps: list[float] = []

    async def heartbeat() -> None:
        # The hub shares this event loop: if parsing or storage blocked it, beats would stall.
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - last)
            last = loop.time()

    async with running_hub(hub_config(mosquitto.url, pg_dsn)) as hub:
        beat = asyncio.create_task(heartbeat())
        for i, (bad_topic, payload, _) in enumerate(corpus):
            await mqtt_client.apublish(topic, telemetry(src, 100 + i, now - 10_000 + 10 * i, 10))
            await mqtt_client.apublish(bad_topic, payload)
        await mqtt_client.apublish(topic, telemetry(src, 999, now - 20_000, 10))

        async def all_stored() -> bool:
            return await count_readings(pg_dsn, site) == 10 * (len(corpus) + 1)

        await eventually(all_stored)

        async def all_dead() -> bool:
            rows = await pg_fetch(pg_dsn, "SELECT count(*) FROM dead_letters")
            return int(rows[0][0]) >= len(corpus)

        await eventually(all_dead)
        # Still up and serving after all of it.
        await mqtt_client.apublish(topic, telemetry(src, 1000, now - 30_000, 5))

        async def last_stored() -> bool:
            return await count_readings(pg_dsn, site) == 10 * (len(corpus) + 1) + 5

        await eventually(last_stored)
        dead = hub.metrics.registry.get_sample_value(
            "millstream_ingest_messages_total", {"kind": "dead_letter"}
        )
        assert dead == len(corpus)
        beat.cancel()
    # A generous bound (the machine is shared): the loop was never blocked for long, not even
    # by the 2 MiB, 10,001-reading or 100,000-deep payloads.
    assert max(gaps) < 1.0, max(gaps)
    rows = await pg_fetch(
        pg_dsn,
        "SELECT topic, payload, reason, message, payload_size, src FROM dead_letters"
        " WHERE topic LIKE $1",
        f"%{site}%",
    )
    # Commits may overlap, so match each dead letter to its message by (topic, payload head):
    # the store keeps every row, but past a publisher's byte budget (and of an oversized
    # payload) only the head of the payload.
    stored = {(r["topic"], bytes(r["payload"])[:1024]): r for r in rows}
    assert len(stored) == len(rows) == len(corpus)
    for bad_topic, payload, reasons in corpus:
        row = stored[(bad_topic, payload[:1024])]
        assert row["reason"] in reasons, (row["reason"], row["message"], payload[:80])
        assert row["payload_size"] == len(payload)
        assert payload.startswith(bytes(row["payload"]))
        assert row["message"]
        if row["reason"] == "too_large":
            assert len(row["payload"]) == 4096
    # The publisher is attributed where the payload names it.
    assert stored[(corpus[13][0], corpus[13][1][:1024])]["src"] == src


async def test_a_dead_lettered_batch_is_receipted_so_its_publisher_stops_resending(
    mosquitto: Any, pg_dsn: str, mqtt_client: MqttTestClient
) -> None:
    await migrate(pg_dsn)
    site, src = unique("s"), unique("src")
    topic = f"ms/v1/{site}/l1/m1/telemetry"
    mqtt_client.subscribe_receipts(src)
    now = now_ms()
    year_old = now - 365 * 24 * 3600 * 1000  # e.g. a backlog held past the 30-day window
    async with running_hub(hub_config(mosquitto.url, pg_dsn)):
        await mqtt_client.apublish(topic, telemetry(src, 5, year_old, 3))
        await mqtt_client.apublish(topic, telemetry(src, 6, now - 1_000, 3))

        async def both_receipted() -> bool:
            return {5, 6} <= mqtt_client.receipted(src)

        await eventually(both_receipted)
    rows = await pg_fetch(pg_dsn, "SELECT reason, src FROM dead_letters")
    assert [(r["reason"], r["src"]) for r in rows] == [("ts_out_of_range", src)]
    assert await count_readings(pg_dsn, site) == 3


async def test_two_hubs_on_the_shared_subscription_split_the_load(
    mosquitto: Any, pg_dsn: str, mqtt_client: MqttTestClient
) -> None:
    await migrate(pg_dsn)
    site, src, group = unique("s"), unique("src"), unique("g")
    t0 = now_ms() - 100_000
    a_cfg = hub_config(mosquitto.url, pg_dsn, share_group=group)
    b_cfg = hub_config(mosquitto.url, pg_dsn, share_group=group)
    # One validates in a worker process, the other in its event loop: both paths, same result.
    async with running_hub(a_cfg) as a, running_hub(b_cfg, parse_workers=0) as b:
        for seq in range(200):
            machine = f"m{seq % 4}"
            topic = f"ms/v1/{site}/l1/{machine}/telemetry"
            await mqtt_client.apublish(topic, telemetry(src, seq, t0 + seq * 100, 100))
            if seq % 50 == 0:  # and a few replays, which either hub may get
                await mqtt_client.apublish(topic, telemetry(src, seq, t0 + seq * 100, 100))

        async def all_stored() -> bool:
            return await count_readings(pg_dsn, site) == 200 * 100

        await eventually(all_stored)
        counts = [
            h.metrics.registry.get_sample_value(
                "millstream_ingest_messages_total", {"kind": "telemetry"}
            )
            or 0
            for h in (a, b)
        ]
    assert sum(counts) == 204
    assert min(counts) > 0, counts
    assert await rollup_count(pg_dsn, site) == 200 * 100


async def test_a_retired_instance_takes_no_share_after_it_stops(
    mosquitto: Any, pg_dsn: str, mqtt_client: MqttTestClient
) -> None:
    """`mqtt.retire_on_stop`: a stopped instance leaves the share group and ends its session,
    so the broker queues nothing for it; without it, half the telemetry would wait for an
    instance that is gone (until its session expires, a week by default)."""
    await migrate(pg_dsn)
    site, src, group = unique("s"), unique("src"), unique("g")
    t0 = now_ms() - 100_000
    stays = hub_config(mosquitto.url, pg_dsn, share_group=group)
    leaves = hub_config(mosquitto.url, pg_dsn, share_group=group)
    retiring = leaves.mqtt.model_copy(update={"retire_on_stop": True})
    leaves = leaves.model_copy(update={"mqtt": retiring})
    async with running_hub(stays):
        async with running_hub(leaves):
            topic = f"ms/v1/{site}/l1/m1/telemetry"
            for seq in range(20):  # both take a share while both run
                await mqtt_client.apublish(topic, telemetry(src, seq, t0 + seq * 100, 10))
        for seq in range(20, 220):
            await mqtt_client.apublish(topic, telemetry(src, seq, t0 + seq * 100, 10))

        async def all_stored() -> bool:
            return await count_readings(pg_dsn, site) == 220 * 10

        await eventually(all_stored, 30)


async def test_storage_restart_loses_nothing_and_receipts_follow_commits(
    mosquitto: Any, postgres_factory: Any, mqtt_client: MqttTestClient
) -> None:
    pg = postgres_factory()  # private: this test stops and starts it
    dsn = pg.dsn
    await migrate(dsn)
    site, src = unique("s"), unique("src")
    topic = f"ms/v1/{site}/l1/m1/telemetry"
    mqtt_client.subscribe_receipts(src)
    t0 = now_ms() - 200_000
    # A small window, so the test can see the bound hold while PostgreSQL is away.
    async with running_hub(hub_config(mosquitto.url, dsn, receive_maximum=8)) as hub:
        for seq in range(30):
            await mqtt_client.apublish(topic, telemetry(src, seq, t0 + seq * 100, 100))

        async def first_receipted() -> bool:
            return set(range(30)) <= mqtt_client.receipted(src)

        await eventually(first_receipted)
        await asyncio.to_thread(pg.stop)
        for seq in range(30, 60):
            await mqtt_client.apublish(topic, telemetry(src, seq, t0 + seq * 100, 100))

        async def holding() -> bool:
            return hub.metrics.registry.get_sample_value("millstream_storage_up") == 0

        await eventually(holding)
        # Nothing is committed while PostgreSQL is down, so nothing may be receipted, and the
        # broker holds everything beyond the hub's window (Receive Maximum).
        await asyncio.sleep(1.0)
        assert not (set(range(30, 60)) & mqtt_client.receipted(src))
        backlog = hub.metrics.registry.get_sample_value("millstream_ingest_backlog_messages")
        assert backlog is not None
        assert 0 < backlog <= 8
        await asyncio.to_thread(pg.start)
        for seq in range(60, 90):
            await mqtt_client.apublish(topic, telemetry(src, seq, t0 + seq * 100, 100))

        async def all_receipted() -> bool:
            return set(range(90)) <= mqtt_client.receipted(src)

        await eventually(all_receipted, 60)
    assert await count_readings(dsn, site) == 90 * 100
    assert await rollup_count(dsn, site) == 90 * 100


async def test_status_messages_update_machines_and_agents(
    mosquitto: Any, pg_dsn: str, mqtt_client: MqttTestClient
) -> None:
    import wire  # noqa: PLC0415 -- only this test builds status payloads

    await migrate(pg_dsn)
    site, agent = unique("s"), unique("agent")
    now = now_ms()
    m1, m2 = wire.status_topic(site, "l1", "m1"), wire.status_topic(site, "l1", "m2")
    agent_topic = wire.agent_status_topic(agent)
    async with running_hub(hub_config(mosquitto.url, pg_dsn)):
        await mqtt_client.apublish(m1, wire.encode_status("online", now), retain=True)
        await mqtt_client.apublish(m2, wire.encode_status("faulted", now, "E42 spindle"))
        await mqtt_client.apublish(
            agent_topic,
            wire.encode_agent_status("online", now, version="0.1.0", buffer_depth=12, dropped=3),
        )
        await mqtt_client.apublish(m1, b'{"v": 1, "state": "sleeping"}')  # invalid → dead letter
        await mqtt_client.apublish(m1, b"", retain=True)  # clears the retained status: ignored
        await mqtt_client.apublish(m1, wire.encode_status("offline", now + 1))

        async def updated() -> bool:
            rows = await pg_fetch(
                pg_dsn, "SELECT machine, state FROM machines WHERE site = $1 ORDER BY 1", site
            )
            return [tuple(r) for r in rows] == [("m1", "offline"), ("m2", "faulted")]

        await eventually(updated)
        rows = await pg_fetch(
            pg_dsn,
            "SELECT state, version, buffer_depth, drops FROM agents WHERE agent_id = $1",
            agent,
        )
        assert [tuple(r) for r in rows] == [("online", "0.1.0", 12, 3)]
        detail = await pg_fetch(
            pg_dsn, "SELECT detail FROM machines WHERE site = $1 AND machine = 'm2'", site
        )
        assert detail[0][0] == "E42 spindle"
        dead = await pg_fetch(pg_dsn, "SELECT reason FROM dead_letters WHERE topic = $1", m1)
        assert [r[0] for r in dead] == ["bad_field"]


async def test_meta_messages_store_units_and_bad_ones_are_dead_lettered(
    mosquitto: Any, pg_dsn: str, mqtt_client: MqttTestClient
) -> None:
    import wire  # noqa: PLC0415 -- only these tests build meta payloads

    await migrate(pg_dsn)
    site = unique("s")
    now = now_ms()
    topic = wire.meta_topic(site, "l1", "oven")
    good = wire.encode_meta(now, {"zone1_temp": wire.TagMeta(unit="°C", description="Zone 1")})
    # Retained before the hub subscribes: the hub must get it on subscription.
    await mqtt_client.apublish(topic, good, retain=True)
    async with running_hub(hub_config(mosquitto.url, pg_dsn)):
        await mqtt_client.apublish(topic, b'{"v":1,"ts":1,"tags":{"t":{"unit":7}}}')

        async def stored() -> bool:
            rows = await pg_fetch(
                pg_dsn, "SELECT tag, unit, description FROM tag_meta WHERE site = $1", site
            )
            dead = await pg_fetch(pg_dsn, "SELECT reason FROM dead_letters WHERE topic = $1", topic)
            return [tuple(r) for r in rows] == [("zone1_temp", "°C", "Zone 1")] and [
                r[0] for r in dead
            ] == ["bad_field"]

        await eventually(stored)
    await mqtt_client.apublish(topic, b"", retain=True)  # leave the shared broker clean


async def test_readings_storage_cannot_hold_are_dead_lettered_alone_and_the_rest_stored(
    mosquitto: Any, pg_dsn: str, mqtt_client: MqttTestClient
) -> None:
    # Issue 18: a PLC string padded with NULs, or two huge numbers whose minute sum overflowed a
    # double, used to turn a whole batch into one dead letter that was receipted (so deleted at
    # the agent): every other reading of the batch vanished. Now each such reading is refused on
    # its own, the rest is stored, and the receipt covers the batch.
    await migrate(pg_dsn)
    site, src = unique("s"), unique("src")
    topic = f"ms/v1/{site}/l1/m1/telemetry"
    now = now_ms()
    readings: list[dict[str, Any]] = [
        {"tag": "temp", "ts": now - i, "v": float(i)} for i in range(50)
    ]
    readings[10] = {"tag": "program", "ts": now, "v": "O1234\u0000\u0000\u0000"}
    readings[20] = {"tag": "flow", "ts": now, "v": 1.7e308}
    readings[21] = {"tag": "flow", "ts": now - 1, "v": 1.7e308}
    # The largest magnitudes the contract allows sum in a rollup without overflowing.
    minute = now - now % 60_000
    readings += [{"tag": "big", "ts": minute + i, "v": 1e300} for i in range(3)]
    payload = json.dumps({"v": 1, "src": src, "seq": 7, "readings": readings}).encode()
    mqtt_client.subscribe_receipts(src)
    async with running_hub(hub_config(mosquitto.url, pg_dsn, flush_ms=50)):
        await mqtt_client.apublish(topic, payload)

        async def done() -> bool:
            dead = await pg_fetch(pg_dsn, "SELECT reason FROM dead_letters")
            return len(dead) == 1 and 7 in mqtt_client.receipted(src)

        await eventually(done)
    assert await count_readings(pg_dsn, site) == len(readings) - 3
    (row,) = await pg_fetch(pg_dsn, "SELECT reason, src, message, payload FROM dead_letters")
    assert (row["reason"], row["src"]) == ("nul_in_string", src)
    assert row["message"].startswith("3 of 53 readings refused, the rest stored: readings[10].v")
    assert "readings[20].v: must be a finite number within ±1e300" in row["message"]
    # Only the bad part of the message is kept, as a batch of its own.
    kept = json.loads(bytes(row["payload"]))
    assert kept["readings"] == [readings[10], readings[20], readings[21]]
    (big,) = await pg_fetch(
        pg_dsn,
        "SELECT r.sum, r.count FROM rollup_minute r JOIN series s ON s.id = r.series_id"
        " WHERE s.tag = 'big'",
    )
    assert big["count"] == 3
    assert big["sum"] == pytest.approx(3e300)


# Two ways an operator's rule makes PostgreSQL refuse a batch for its content: a CHECK
# constraint (SQLSTATE class 23) and a trigger raising an exception (class P0, which the hub
# once took for "storage unavailable" and retried for ever).
_REFUSING_RULES = {
    "check": "ALTER TABLE readings ADD CONSTRAINT plausible CHECK (value IS NULL OR value < 1e6)",
    "trigger": """
        CREATE FUNCTION plausible() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.value >= 1e6 THEN RAISE EXCEPTION 'plausible: % is out of range', NEW.value;
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER plausible BEFORE INSERT ON readings
            FOR EACH ROW EXECUTE FUNCTION plausible();
    """,
}


@pytest.mark.parametrize("rule", sorted(_REFUSING_RULES))
async def test_a_batch_postgresql_refuses_is_set_aside_and_every_other_site_flows(
    mosquitto: Any, pg_dsn: str, mqtt_client: MqttTestClient, rule: str
) -> None:
    """A batch the database refuses for what it holds (a rule an operator added) is
    dead-lettered with the database's reason, and ingest goes on; retried as "storage
    unavailable", it would stall every site behind it for ever."""
    await migrate(pg_dsn)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(_REFUSING_RULES[rule])
    finally:
        await conn.close()
    poisoned, fine, src = unique("s"), unique("s"), unique("src")
    now = now_ms()
    bad = json.dumps(
        {"v": 1, "src": src, "seq": 1, "readings": [{"tag": "p", "ts": now, "v": 5e6}]}
    ).encode()
    async with running_hub(hub_config(mosquitto.url, pg_dsn, flush_ms=50)):
        await mqtt_client.apublish(f"ms/v1/{poisoned}/l1/m1/telemetry", bad)
        for seq in range(20):
            topic = f"ms/v1/{fine}/l1/m{seq % 3}/telemetry"
            await mqtt_client.apublish(
                topic, telemetry(src, 100 + seq, now - 60_000 + seq * 100, 10)
            )

        async def flowing() -> bool:
            dead = await pg_fetch(pg_dsn, "SELECT reason FROM dead_letters")
            return len(dead) == 1 and await count_readings(pg_dsn, fine) == 200

        await eventually(flowing, 30)
    (row,) = await pg_fetch(pg_dsn, "SELECT reason, message, payload FROM dead_letters")
    assert row["reason"] == "storage_rejected"
    assert "plausible" in row["message"]  # the database's own words
    assert bytes(row["payload"]) == bad
    assert await count_readings(pg_dsn, poisoned) == 0


async def test_embedded_sqlite_backend_end_to_end(
    mosquitto: Any, tmp_path: Any, mqtt_client: MqttTestClient
) -> None:
    from hub.storage import SeriesKey  # noqa: PLC0415
    from tests.harness.stored import Stored  # noqa: PLC0415

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    await migrate(url)
    site, src = unique("s"), unique("src")
    topic = f"ms/v1/{site}/l1/m1/telemetry"
    mqtt_client.subscribe_receipts(src)
    t0 = now_ms() - 5000
    async with running_hub(hub_config(mosquitto.url, url)):
        for seq in range(5):
            await mqtt_client.apublish(topic, telemetry(src, seq, t0 + seq * 100, 100))
        await mqtt_client.apublish(topic, telemetry(src, 0, t0, 100))  # a replay
        await mqtt_client.apublish(topic, b"nope")

        async def receipted() -> bool:
            return set(range(5)) <= mqtt_client.receipted(src)

        await eventually(receipted)
    rows = await Stored(url).read_readings(SeriesKey(site, "l1", "m1", "temp"), 0, 2**62)
    assert len(rows) == 500
    assert [d["reason"] for d in await Stored(url).read_dead_letters()] == ["bad_json"]
