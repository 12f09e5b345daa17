"""A 60 s broker outage: the backlog drains afterwards, live data keeps priority, nothing lost."""

from __future__ import annotations

import asyncio
import time

from agent_harness import AgentProcess
from mqtt_harness import Broker, Responder, eventually

OUTAGE_S = 60


async def until(pred: object, within: float = 120) -> None:
    async def check() -> bool:
        return bool(pred())  # type: ignore[operator]

    await eventually(check, within)


async def test_broker_down_60s_backlog_drains_live_first(
    agent: AgentProcess, broker: Broker
) -> None:
    agent.rate = 250.0  # per device: 500 readings/s, 30,000 piled up during the outage
    # The backlog lane is paced well below what the link takes, so the drain lasts a while
    # and the order of arrival shows which lane went first.
    agent.mqtt = {"backlog_rate": 3000}
    async with Responder(broker) as hub:
        agent.start()
        await until(lambda: hub.total() > 1000)
        broker.stop()
        stopped_ms = int(time.time() * 1000)
        await asyncio.sleep(OUTAGE_S)
        status = agent.status()
        assert not status["connected"]
        assert status["buffer"]["readings"] > 20_000  # the outage's readings are held locally
        broker.start()
        restarted_ms = int(time.time() * 1000)
        served_at_restart = agent.served()
        await until(
            lambda: (
                {(m, t, ts) for m, rs in hub.readings.items() for t, ts in rs} >= served_at_restart
            )
        )
        assert agent.terminate() == 0
    batches = hub.batches
    # Live: batches wholly made of readings taken after the broker came back. Backlog: batches
    # holding readings from the outage. Live first means live batches arrived while the
    # backlog was still draining, not after it.
    first_live = next(
        i for i, b in enumerate(batches) if min(r["ts"] for r in b["readings"]) > restarted_ms
    )
    last_backlog = max(
        i
        for i, b in enumerate(batches)
        if any(stopped_ms < r["ts"] < restarted_ms - 2000 for r in b["readings"])
    )
    assert first_live < last_backlog, "live data waited for the backlog"
