"""The hub as Sparkplug B primary host, against an independent edge node: Eclipse Tahu's
JavaScript client (tests/interop/sparkplug/edge_node.js) on a real Mosquitto, with a hub process
on PostgreSQL. Ground truth is what the node published: every metric value stored once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hubtest import MqttTestClient, eventually, pg_fetch, unique

from tests.harness import free_port
from tests.harness.hubproc import HUB, HubProcess, hub_env
from tests.harness.tahu import EdgeNode, host_ready

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(240)]


@pytest.fixture
def edge_nodes() -> Iterator[Callable[[], EdgeNode]]:
    made: list[EdgeNode] = []

    def make() -> EdgeNode:
        made.append(EdgeNode())
        return made[-1]

    yield make
    for node in made:
        node.close()


def sparkplug_hub(mosquitto_factory: Any, tmp_path: Path, dsn: str) -> tuple[Any, Path, int, str]:
    """A private broker set as packaging sets it for Sparkplug, and a migrated hub config
    hosting Sparkplug: (broker, config file, HTTP port, host id)."""
    broker = mosquitto_factory(persistence=False, upgrade_qos0=True)
    mqtt_url, host_id, port = broker.url, unique("host"), free_port()
    path = tmp_path / "hub.yaml"
    path.write_text(
        f"mqtt: {{url: '{mqtt_url}', client_id: {unique('hub-')}, share_group: {unique('g')},"
        " session_expiry_s: 300}\n"
        f"storage: '{dsn}'\n"
        f"http: {{host: 127.0.0.1, port: {port}}}\n"
        "flush_ms: 20\n"
        f"jwt_secret: {os.urandom(24).hex()}\n"
        f"sparkplug: {{host_id: {host_id}, rebirth_interval_s: 0.5}}\n"
    )
    done = subprocess.run(
        [HUB, "migrate", "--config", str(path)], capture_output=True, text=True, timeout=60,
        check=False, env=hub_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return broker, path, port, host_id


async def stored(dsn: str, site: str) -> dict[tuple[str, str, int], Any]:
    """(machine, tag, ts) → value of every reading of `site`; duplicates would fail the test."""
    rows = await pg_fetch(
        dsn,
        "SELECT s.machine, s.tag, r.ts, r.value, r.value_text FROM readings r"
        " JOIN series s ON s.id = r.series_id WHERE s.site = $1",
        site,
    )
    out: dict[tuple[str, str, int], Any] = {}
    for r in rows:
        key = (r["machine"], r["tag"], r["ts"])
        assert key not in out, f"stored twice: {key}"
        out[key] = r["value_text"] if r["value_text"] is not None else r["value"]
    return out


def metric(name: str | None, alias: int, kind: str, value: Any, ts: int, **more: Any) -> Any:
    m = {"alias": alias, "type": kind, "value": value, "timestamp": ts, **more}
    if name is not None:
        m["name"] = name
    return m


async def test_a_tahu_edge_node_is_stored_once_with_aliases_rebirths_and_deaths(
    mosquitto_factory: Any,
    pg_dsn: str,
    tmp_path: Path,
    edge_nodes: Callable[[], EdgeNode],
) -> None:
    broker, config, port, host_id = sparkplug_hub(mosquitto_factory, tmp_path, pg_dsn)
    group, node = unique("plant"), unique("line")
    hub = HubProcess(config, tmp_path / "hub.log")
    try:
        await host_ready(port, hub)
        edge = edge_nodes()
        edge.send(
            "connect", url=broker.url, group=group, node=node,
            clientId=unique("tahu-"), hostId=host_id,
        )  # fmt: skip
        await edge.expect(lambda e: e.get("event") == "connected")
        await edge.expect(lambda e: e == {"event": "state", "online": True})
        t = int(time.time() * 1000) - 60_000
        await edge.do(
            "nbirth",
            metrics=[
                metric("Uptime", 1, "Int64", 100, t),
                metric("Node Control/Rebirth", 2, "Boolean", False, t),
            ],
        )
        await edge.do(
            "dbirth",
            device="press-01",
            metrics=[
                metric("Oil/Temp", 10, "Double", 40.5, t),
                metric("Running", 11, "Boolean", True, t),
                metric("Mode", 12, "String", "auto", t),
                metric("Count", 13, "Int32", -3, t),
            ],
        )
        # By name, then by alias only (what most edge nodes send after the birth).
        await edge.do(
            "ddata", device="press-01", metrics=[metric("Oil/Temp", 10, "Double", 41.0, t + 1)]
        )
        await edge.do(
            "ddata",
            device="press-01",
            metrics=[
                metric(None, 10, "Double", 42.0, t + 2),
                metric(None, 11, "Boolean", False, t + 2),
            ],
        )
        await eventually(lambda: _count(pg_dsn, group, "Oil.Temp", 3))
        # Three messages lost on the way (a seq gap): the host asks for a rebirth; the births
        # the node sends again carry values already stored, which are not stored twice.
        await edge.do("gap", n=3)
        await edge.do("ddata", device="press-01", metrics=[metric(None, 10, "Double", 43.0, t + 3)])
        await edge.expect(lambda e: e == {"event": "rebirth"})
        await asyncio.sleep(0.6)  # past the test's rebirth interval
        # An alias no birth declared: that metric is set aside, its neighbour stored.
        await edge.do(
            "ddata",
            device="press-01",
            metrics=[
                metric(None, 10, "Double", 44.0, t + 4),
                metric(None, 99, "Double", 7.0, t + 4),
            ],
        )
        await edge.expect(lambda e: e == {"event": "rebirth"})
        # History: stored where its timestamp says, never shown live.
        await edge.do(
            "ddata",
            device="press-01",
            metrics=[metric("Oil/Temp", 10, "Double", 39.0, t - 1000, isHistorical=True)],
        )
        await edge.do("ndata", metrics=[metric(None, 1, "Int64", 101, t + 5)])
        # Compressed the way Tahu's client does it (DEFLATE, and GZIP).
        await edge.do(
            "ddata",
            device="press-01",
            metrics=[metric(None, 10, "Double", 45.0, t + 6)],
            options={"compress": True},
        )
        await edge.do(
            "ddata",
            device="press-01",
            metrics=[metric(None, 10, "Double", 46.0, t + 7)],
            options={"compress": True, "algorithm": "GZIP"},
        )
        broken = MqttTestClient(broker.host, broker.port)
        try:
            await broken.apublish(f"spBv1.0/{group}/DDATA/{node}/press-02", b"\xff\x00garbage")
        finally:
            broken.close()
        expected = {
            ("press-01", "Oil.Temp", t): 40.5,
            ("press-01", "Oil.Temp", t + 1): 41.0,
            ("press-01", "Oil.Temp", t + 2): 42.0,
            ("press-01", "Oil.Temp", t + 3): 43.0,
            ("press-01", "Oil.Temp", t + 4): 44.0,
            ("press-01", "Oil.Temp", t - 1000): 39.0,
            ("press-01", "Oil.Temp", t + 6): 45.0,
            ("press-01", "Oil.Temp", t + 7): 46.0,
            ("press-01", "Running", t): "true",
            ("press-01", "Running", t + 2): "false",
            ("press-01", "Mode", t): "auto",
            ("press-01", "Count", t): -3.0,
            (node, "Uptime", t): 100.0,
            (node, "Uptime", t + 5): 101.0,
        }

        async def all_stored() -> bool:
            return len(await stored(pg_dsn, group)) >= len(expected)

        await eventually(all_stored)
        await asyncio.sleep(0.5)  # anything doubled would land now
        assert await stored(pg_dsn, group) == expected

        async def dead_letters() -> list[str]:
            rows = await pg_fetch(pg_dsn, "SELECT reason FROM dead_letters ORDER BY id")
            return [r["reason"] for r in rows]

        async def both_refused() -> bool:
            return sorted(await dead_letters()) == ["bad_protobuf", "unknown_alias"]

        await eventually(both_refused)

        async def states() -> dict[str, str]:
            rows = await pg_fetch(
                pg_dsn, "SELECT machine, state FROM machines WHERE site = $1", group
            )
            return {r["machine"]: r["state"] for r in rows}

        assert await states() == {"press-01": "online", node: "online"}
        await edge.do("ddeath", device="press-01")

        async def press_offline() -> bool:
            return (await states()).get("press-01") == "offline"

        await eventually(press_offline)
        edge.send("stop")  # NDEATH: the node and everything behind it offline

        async def all_offline() -> bool:
            return await states() == {"press-01": "offline", node: "offline"}

        await eventually(all_offline)
    finally:
        hub.close()


async def _count(dsn: str, site: str, tag: str, n: int) -> bool:
    rows = await pg_fetch(
        dsn,
        "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id"
        " WHERE s.site = $1 AND s.tag = $2",
        site,
        tag,
    )
    return int(rows[0][0]) >= n


async def test_a_hub_sigkill_and_an_edge_node_reconnect_lose_and_double_nothing(
    mosquitto_factory: Any,
    pg_dsn: str,
    tmp_path: Path,
    edge_nodes: Callable[[], EdgeNode],
) -> None:
    broker, config, port, host_id = sparkplug_hub(mosquitto_factory, tmp_path, pg_dsn)
    group, node = unique("plant"), unique("line")
    hub = HubProcess(config, tmp_path / "hub-1.log")
    t = int(time.time() * 1000) - 120_000
    sent: dict[tuple[str, str, int], Any] = {("press-01", "Oil.Temp", t): 0.5}
    birth = [metric("Oil/Temp", 10, "Double", 0.5, t)]

    async def pump(edge: EdgeNode, first: int, last: int) -> None:
        for i in range(first, last):
            edge.send("ddata", device="press-01", metrics=[metric(None, 10, "Double", i, t + i)])
            sent["press-01", "Oil.Temp", t + i] = float(i)
            await asyncio.sleep(0.01)

    async def start(edge: EdgeNode) -> None:
        edge.send(
            "connect", url=broker.url, group=group, node=node,
            clientId=unique("tahu-"), hostId=host_id,
        )  # fmt: skip
        await edge.expect(lambda e: e.get("event") == "connected")
        await edge.do("nbirth", metrics=[metric("Node Control/Rebirth", 1, "Boolean", False, t)])
        await edge.do("dbirth", device="press-01", metrics=birth)

    restarted = None
    try:
        await host_ready(port, hub)
        edge = edge_nodes()
        await start(edge)
        await edge.expect(lambda e: e == {"event": "state", "online": True})
        await pump(edge, 1, 80)
        hub.kill()  # SIGKILL in the middle of the stream: the node keeps sending for a while
        await pump(edge, 80, 160)
        # The host's death certificate (its will) told the node to keep its data meanwhile.
        await edge.expect(lambda e: e == {"event": "state", "online": False})
        restarted = HubProcess(config, tmp_path / "hub-2.log")
        await host_ready(port, restarted)
        # Back: the node sends its births and what it kept, as history.
        await edge.expect(lambda e: e == {"event": "state", "online": True})
        await pump(edge, 160, 200)
        # The edge node reconnects (a new process, a new session and bdSeq).
        edge.send("stop")
        edge = edge_nodes()
        await start(edge)
        await pump(edge, 200, 240)

        async def all_stored() -> bool:
            return len(await stored(pg_dsn, group)) >= len(sent)

        try:
            await eventually(all_stored)
        finally:
            got = await stored(pg_dsn, group)
            missing = sorted(k[2] - t for k in sent.keys() - got.keys())
            assert not missing, f"lost: {missing}"
        await asyncio.sleep(0.5)  # anything doubled would land now (and fail `stored`)
        assert await stored(pg_dsn, group) == sent
        # The kept part went out as history (the node marks it; the hub stores it all the same).
        assert "Sparkplug primary host" in restarted.log_text()
    finally:
        hub.close()
        if restarted is not None:
            restarted.close()
