"""The event loop is never blocked long: SQLite and encoding stay off it (asyncio's detector)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path

import pytest
from mqtt_harness import Broker, Responder

from edge_agent.buffer import schema
from edge_agent.config import AgentConfig
from edge_agent.runtime import Agent, SyntheticSource, run_agent

# A callback this long means something blocked the loop. Generous because the detector
# measures wall time and this 2-core box is shared (load 10 deschedules us for 100s of ms);
# the exact check that SQLite never runs on the loop is the statement trace below.
SLOW = 1.0


async def test_event_loop_never_blocked(
    broker: Broker,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: set[str] = set()
    connect = schema._connect

    def traced(path: Path) -> sqlite3.Connection:
        conn = connect(path)
        conn.set_trace_callback(lambda _sql: threads.add(threading.current_thread().name))
        return conn

    monkeypatch.setattr(schema, "_connect", traced)
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
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW
    ready: asyncio.Future[Agent] = loop.create_future()
    try:
        async with Responder(broker) as hub:
            with caplog.at_level(logging.WARNING, logger="asyncio"):
                task = asyncio.create_task(
                    run_agent(config, tmp_path / "agent.yaml", sources, on_ready=ready.set_result)  # type: ignore[arg-type]
                )
                agent = await ready
                await hub.wait_for(lambda: hub.total() > 30_000, within=60)
                agent.stop()
                await task
    finally:
        loop.set_debug(False)
    # The stand-in hub shares this loop; it is test code, so only the agent's callbacks count.
    slow = [m for r in caplog.records if "took" in (m := r.getMessage()) and "Responder" not in m]
    assert not slow, slow
    assert threads == {"buffer-writer"}  # every SQL statement ran on the writer thread
