"""The agent as a subprocess against real Mosquitto: kill -9, SIGTERM, outages, bounds."""

from __future__ import annotations

import asyncio
import json
import time

import aiomqtt
import psutil
from agent_harness import AgentProcess
from mqtt_harness import Broker, Responder, eventually

# A reading may be lost on kill -9 only if it was still waiting for its group commit:
# batching delay (100 ms) + commit interval (100 ms) + one synthetic poll (10 ms), plus
# scheduling slack on a shared 2-core test machine.
LOSS_WINDOW_MS = 100 + 100 + 10 + 150


def received(hub: Responder) -> set[tuple[str, str, int]]:
    return {(m, tag, ts) for m, rs in hub.readings.items() for tag, ts in rs}


async def until(pred: object, within: float = 60) -> None:
    async def check() -> bool:
        return bool(pred())  # type: ignore[operator]

    await eventually(check, within)


async def test_kill_9_then_restart_loses_nothing_committed(
    agent: AgentProcess, broker: Broker
) -> None:
    async with Responder(broker) as hub:
        agent.start()
        await until(lambda: hub.total() > 2000)
        await asyncio.sleep(1.0)
        kill_ms = int(time.time() * 1000)
        agent.kill()
        served_before = agent.served()
        agent.start()
        await until(lambda: agent.status_file.exists() and agent.status()["connected"])
        await asyncio.sleep(1.5)
        assert agent.terminate() == 0
        served = agent.served()
        await until(
            lambda: (
                received(hub)
                >= served - {r for r in served_before if r[2] >= kill_ms - LOSS_WINDOW_MS}
            )
        )
        got = received(hub)
        assert got <= served, "a reading arrived that the device never served"
        missing = served - got
        assert all(ts >= kill_ms - LOSS_WINDOW_MS for _, _, ts in missing), sorted(missing)[:5]
        assert all(r in served_before for r in missing)  # only the killed run may lose any


async def test_sigterm_is_clean_and_nothing_is_lost(agent: AgentProcess, broker: Broker) -> None:
    async with Responder(broker) as hub:
        agent.start()
        await until(lambda: hub.total() > 1000)
        started = time.monotonic()
        assert agent.terminate() == 0
        assert time.monotonic() - started < 5  # the documented shutdown budget
        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.subscribe("ms/v1/agents/agent-t/status", qos=1)
            async with asyncio.timeout(5):
                msg = await anext(aiter(client.messages))
        assert msg.retain
        assert isinstance(msg.payload, bytes)
        assert json.loads(msg.payload)["state"] == "offline"
        # Everything served was either receipted or is still buffered: a restart delivers it.
        agent.rate = 1.0
        agent.start()
        served = agent.served()
        await until(lambda: received(hub) >= served)
        assert received(hub) <= agent.served()


async def test_buffer_bound_drops_oldest_counts_exact_memory_flat(
    agent: AgentProcess, broker: Broker
) -> None:
    agent.rate = 3000.0
    agent.buffer = {"max_bytes": "300kB"}
    async with Responder(broker) as hub:
        hub.suppress = True  # a hub that never answers: nothing is ever deleted by receipt
        agent.start()
        await until(lambda: agent.status_file.exists() and agent.status()["buffer"]["dropped"] > 0)
        assert agent.proc is not None
        proc = psutil.Process(agent.proc.pid)
        await asyncio.sleep(2)
        rss_start = proc.memory_info().rss
        await asyncio.sleep(8)
        rss_end = proc.memory_info().rss
        assert rss_end - rss_start < 8 * 2**20, (rss_start, rss_end)
        assert agent.terminate() == 0
    status_doc = agent.status()
    served = len(agent.served())
    buf = status_doc["buffer"]
    assert buf["bytes"] <= 300_000
    # Read after the clean stop: the last document written may already say offline.
    assert status_doc["state"] in ("faulted", "online", "offline")
    # Exact accounting: every served reading is either still buffered or counted as dropped.
    assert buf["readings"] + buf["dropped"] == served
    per_device = {name: d["dropped"] for name, d in status_doc["devices"].items()}
    assert sum(per_device.values()) == buf["dropped"]
    # The status published over MQTT carries the same per-device view to the hub, with where
    # the machines live and what each produced per minute (the hub's completeness view).
    published = [s for s in hub.statuses if s.get("devices")]
    assert published, hub.statuses
    last = published[-1]
    assert (last["site"], last["line"]) == ("plant", "l1")
    assert set(last["devices"]) == set(status_doc["devices"])
    produced = sum(n for d in last["devices"].values() for _, n in d.get("produced", []))
    assert 0 < produced <= served
