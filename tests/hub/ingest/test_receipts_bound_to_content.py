"""A receipt deletes only what the hub stored from the batch the agent sent (issue 18, case 1).

Real agent (subprocess, synthetic machines, its truth log), real hub, Mosquitto and PostgreSQL.
The agent's first batches are lost by the broker (the hub has no session yet, as when a broker
loses the hub's queue); then another client publishes batches that reuse the agent's `src` and
those seqs with other content. The hub stores those and receipts them, naming their digests: the
agent must keep its own batches, send them again, and every reading must reach PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from hubtest import count_readings, eventually, hub_config, migrate, now_ms, pg_fetch, running_hub

import wire

RUNTIME = Path(__file__).resolve().parents[2] / "edge_agent" / "runtime"
sys.path.insert(0, str(RUNTIME.parent / "publish"))
sys.path.insert(0, str(RUNTIME))
from agent_harness import AgentProcess  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="session")

SITE, LINE, SRC = "plant", "l1", "agent-t"  # AgentProcess's identity


@pytest.fixture
def agent(tmp_path: Path, mosquitto: Any) -> Iterator[AgentProcess]:
    a = AgentProcess(
        tmp_path / "agent",
        mosquitto,
        rate=50.0,
        devices=("m1",),
        mqtt={"receipt_timeout": "2s"},
    )
    yield a
    if a.proc is not None:
        a.kill()


async def _stored(dsn: str) -> set[tuple[str, str, int]]:
    rows = await pg_fetch(
        dsn,
        "SELECT s.machine, s.tag, r.ts FROM readings r "
        "JOIN series s ON s.id = r.series_id WHERE s.site = $1",
        SITE,
    )
    return {(m, t, int(ts)) for m, t, ts in rows}


async def test_a_forged_batch_under_the_agents_seqs_deletes_nothing(
    agent: AgentProcess, mosquitto: Any, pg_dsn: str
) -> None:
    await migrate(pg_dsn)
    lost: dict[int, bytes] = {}  # the agent's batches nobody stored, by seq
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as spy:
        await spy.subscribe(f"ms/v1/{SITE}/{LINE}/+/telemetry", qos=1)
        agent.start()
        async with asyncio.timeout(60):
            async for msg in spy.messages:
                assert isinstance(msg.payload, bytes)
                lost.setdefault(json.loads(msg.payload)["seq"], msg.payload)
                if len(lost) >= 5:
                    break
    real = {("m1", r["tag"], r["ts"]) for p in lost.values() for r in json.loads(p)["readings"]}

    async with (
        running_hub(hub_config(mosquitto.url, pg_dsn)),
        aiomqtt.Client(mosquitto.host, mosquitto.port) as forger,
    ):
        # Another client (a device on the same site) reuses the agent's src and seqs.
        ts = now_ms()
        for seq in lost:
            forged = wire.encode_telemetry(
                SRC, seq, [wire.Reading(tag="forged", ts=ts + seq % 1000, v=1.0)]
            )
            await forger.publish(wire.telemetry_topic(SITE, LINE, "m9"), forged, qos=1)

        async def forged_stored() -> bool:
            return any(t == "forged" for _, t, _ in await _stored(pg_dsn))

        await eventually(forged_stored, 30)

        # The agent keeps its own batches and sends them again after its receipt timeout.
        async def real_stored() -> bool:
            return real <= await _stored(pg_dsn)

        await eventually(real_stored, 60)
        assert "names a payload this agent did not send" in agent.log()
        # And in the end nothing the machine served is missing.
        agent.terminate()
        served = agent.served()
        agent.rate = 1.0
        agent.start()

        async def all_stored() -> bool:
            return served <= await _stored(pg_dsn)

        await eventually(all_stored, 60)
        agent.terminate()
    assert await count_readings(pg_dsn, SITE) >= len(served)
