"""The event loop is never blocked long: SQLite and encoding stay off it (asyncio's detector)."""

from __future__ import annotations

import asyncio
import resource
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from mqtt_harness import Broker, Responder

from edge_agent.buffer import schema
from edge_agent.config import AgentConfig
from edge_agent.runtime import Agent, SyntheticSource, run_agent

# A callback that works this long on the loop's thread (its CPU time) blocked it, and so did one
# that waited in a blocking call (it gave up the CPU itself: a voluntary context switch) and took
# this long in wall time. asyncio's own detector (wall time alone) also counted the time the
# kernel gave the core to other processes, and on a loaded 2-core machine that alone passed 1 s.
# The exact check that SQLite never runs on the loop is the statement trace below.
SLOW = 0.5
SLOW_BLOCKED = 1.0


async def test_event_loop_never_blocked(
    broker: Broker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: set[str] = set()
    connect = schema._connect

    def traced(path: Path) -> sqlite3.Connection:
        conn = connect(path)
        conn.set_trace_callback(lambda _sql: threads.add(threading.current_thread().name))
        return conn

    monkeypatch.setattr(schema, "_connect", traced)
    slow: list[str] = []
    run_handle = asyncio.events.Handle._run

    def timed(handle: asyncio.Handle) -> None:
        cpu, wall = time.thread_time(), time.monotonic()
        waits = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
        run_handle(handle)
        cpu, wall = time.thread_time() - cpu, time.monotonic() - wall
        waited = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw > waits
        if cpu > SLOW or (waited and wall > SLOW_BLOCKED):
            owner = getattr(handle._callback, "__self__", handle._callback)  # a task's step
            name = owner.get_name() if isinstance(owner, asyncio.Task) else repr(owner)
            slow.append(f"{name}: {cpu:.3f} s of CPU, {wall:.3f} s in all on the loop")

    monkeypatch.setattr(asyncio.events.Handle, "_run", timed)
    config = AgentConfig.model_validate(
        {
            "agent": {"id": "lag-agent", "site": "plant", "line": "l1"},
            "mqtt": {"url": broker.url, "status_interval": "1s"},
            "buffer": {"path": str(tmp_path / "buffer.db")},
            "devices": [
                {"machine": f"m{i}", "profile": "synthetic", "modbus": {"host": "127.0.0.1"}}
                for i in range(4)
            ],
        }
    )
    sources = {f"m{i}": SyntheticSource(f"m{i}", tags=20, rate=2500) for i in range(4)}
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[Agent] = loop.create_future()
    async with Responder(broker) as hub:
        task = asyncio.create_task(
            run_agent(config, tmp_path / "agent.yaml", sources, on_ready=ready.set_result)  # type: ignore[arg-type]
        )
        agent = await ready
        await hub.wait_for(lambda: hub.total() > 30_000, within=60)
        agent.stop()
        await task
    # The stand-in hub shares this loop; its steps are small, so every callback is held to it.
    assert not slow, slow
    assert threads == {"buffer-writer"}  # every SQL statement ran on the writer thread
