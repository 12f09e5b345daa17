"""Interop with an independent OPC-UA server implementation: node-opcua, run by Node.js.

The server (tests/interop/opcua/server.js) prints every value it serves; the agent must deliver
exactly those values, through subscriptions and through polling, and survive a restart of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import logging
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from opcua_harness import free_port, until

from edge_agent.drivers.base import Sample
from edge_agent.drivers.opcua import (
    Deadband,
    OpcuaDriver,
    OpcuaEndpoint,
    OpcuaPoint,
    SessionOptions,
)
from millstream_common.backoff import Backoff

INTEROP = Path(__file__).resolve().parents[3] / "interop" / "opcua"

POINTS = [
    OpcuaPoint("spindle_speed", browse_path="/Objects/1:Machine/1:Spindle/1:Speed", sampling_ms=50),
    OpcuaPoint("spindle_speed_polled", node="ns=1;s=Spindle.Speed", mode="poll", sampling_ms=100),
    OpcuaPoint("state", node="ns=1;s=Machine.State", mode="poll", sampling_ms=200),
    OpcuaPoint("part_count", browse_path="/Objects/1:Machine/1:PartCount"),
    OpcuaPoint("spindle_temp", browse_path="/Objects/1:Machine/1:Spindle/1:Temperature"),
]


class NodeServer:
    """One node-opcua server process; collects the values it reports serving."""

    def __init__(
        self, port: int, pki: Path, speed_node: str = "Spindle.Speed", start: float = 1000.0
    ) -> None:
        self.port = port
        self.served: set[float] = set()
        self._ready = threading.Event()
        self._proc = subprocess.Popen(
            ["node", str(INTEROP / "server.js"), str(port), str(pki), speed_node, str(start)],
            cwd=INTEROP,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="node-opcua-stdout", daemon=True)
        self._reader.start()

    @property
    def url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if not line.startswith("{"):
                continue  # node-opcua's own log lines
            message = json.loads(line)
            if "speed" in message:
                self.served.add(float(message["speed"]))
            if message.get("ready"):
                self._ready.set()

    async def wait_ready(self) -> None:
        ready = await asyncio.to_thread(self._ready.wait, 60)
        assert ready, "node-opcua server did not start within 60 s"

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout=5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def _ensure_node_opcua() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("interop with node-opcua needs Node.js and npm (scripts/services install)")
    if not (INTEROP / "node_modules" / "node-opcua").is_dir():
        # Version pinned in package.json; .npmrc keeps a lockfile (and registry hosts) out.
        subprocess.run(
            ["npm", "install", "--no-package-lock"], cwd=INTEROP, check=True, timeout=900
        )


@pytest.fixture(scope="session")
def node_opcua() -> None:
    _ensure_node_opcua()


@pytest_asyncio.fixture(loop_scope="function")
async def node_server(node_opcua: None, tmp_path: Path) -> AsyncIterator[NodeServer]:
    server = NodeServer(free_port(), tmp_path / "node-pki")
    try:
        await server.wait_ready()
        yield server
    finally:
        server.stop()


class Collector:
    def __init__(self, driver: OpcuaDriver) -> None:
        self.samples: list[Sample] = []
        self._task = asyncio.create_task(self._run(driver), name="interop-collector")

    async def _run(self, driver: OpcuaDriver) -> None:
        async for sample in driver.subscribe():
            self.samples.append(sample)

    def values(self, tag: str) -> list[object]:
        return [s.value for s in self.samples if s.tag == tag and s.quality == "good"]

    def last(self, tag: str) -> Sample:
        return [s for s in self.samples if s.tag == tag][-1]

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def make_driver(url: str, security: str, state: Path) -> OpcuaDriver:
    return OpcuaDriver(
        "mill-node",
        OpcuaEndpoint(url, security),
        POINTS,
        SessionOptions(state_dir=state, timeout_s=5.0),
        backoff=Backoff(initial_s=0.2, cap_s=1.0),
    )


@pytest.mark.parametrize(
    "security", ["None", "SignAndEncrypt/Basic256Sha256", "Sign/Aes128_Sha256_RsaOaep"]
)
async def test_subscribed_and_polled_values_are_what_node_opcua_serves(
    node_server: NodeServer, tmp_path: Path, security: str
) -> None:
    async with make_driver(node_server.url, security, tmp_path / "state") as driver:
        collector = Collector(driver)
        await until(lambda: len(set(collector.values("spindle_speed"))) >= 5, timeout_s=20)
        await until(lambda: len(set(collector.values("spindle_speed_polled"))) >= 3, timeout_s=20)
        await until(
            lambda: bool(collector.values("state")) and bool(collector.values("part_count"))
        )
        await until(lambda: any(s.tag == "spindle_temp" for s in collector.samples))
        await collector.stop()

    for tag in ("spindle_speed", "spindle_speed_polled"):
        received = set(collector.values(tag))
        assert received <= node_server.served, f"{tag}: values the server never served"
    assert set(collector.values("state")) == {"RUNNING"}
    assert set(collector.values("part_count")) == {4711}
    temp = collector.last("spindle_temp")
    assert (temp.value, temp.quality) == (61.5, "uncertain")
    source = dt.datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=dt.UTC)
    assert temp.ts == int(source.timestamp() * 1000)


async def test_node_opcua_restart_with_renumbered_node_resumes_within_10_s(
    node_opcua: None, tmp_path: Path
) -> None:
    port = free_port()
    first = NodeServer(port, tmp_path / "node-pki")
    second: NodeServer | None = None
    try:
        await first.wait_ready()
        async with make_driver(first.url, "None", tmp_path / "state") as driver:
            collector = Collector(driver)
            await until(lambda: len(collector.values("spindle_speed")) >= 2, timeout_s=20)
            first.stop()
            before = len(collector.samples)
            # The PLC comes back after a download: same browse path, new node id.
            # Counting from 90,000: any value from it can only come from the restarted server.
            second = NodeServer(
                port, tmp_path / "node-pki", speed_node="Spindle.Speed.v2", start=90_000.0
            )
            await second.wait_ready()

            def resumed() -> bool:
                assert second is not None
                fresh = {s.value for s in collector.samples[before:] if s.tag == "spindle_speed"}
                return bool(fresh & second.served)

            await until(resumed, timeout_s=10)
            await collector.stop()
            # Samples can arrive while the new session is still being set up; then it counts.
            await until(lambda: driver.stats.reconnects >= 1)
    finally:
        first.stop()
        if second is not None:
            second.stop()


async def test_percent_deadband_filters_and_falls_back_without_eu_range(
    node_server: NodeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    points = [
        # EURange 0..10,000: 0.05 % is 5 units; the value climbs by 1 every 100 ms.
        OpcuaPoint(
            "feed",
            node="ns=1;s=Spindle.Feed",
            sampling_ms=50,
            deadband=Deadband("percent", 0.05),
        ),
        # No EURange on Speed: node-opcua refuses the filter; values must flow regardless.
        OpcuaPoint(
            "spindle_speed",
            node="ns=1;s=Spindle.Speed",
            sampling_ms=50,
            deadband=Deadband("percent", 0.05),
        ),
    ]
    # In-process CLI tests (probe quietens edge_agent.drivers) may have run first.
    caplog.set_level(logging.WARNING, logger="edge_agent.drivers.opcua.session")
    driver = OpcuaDriver(
        "mill-node", OpcuaEndpoint(node_server.url), points, SessionOptions(tmp_path / "state")
    )
    async with driver:
        collector = Collector(driver)
        await until(lambda: len(collector.values("feed")) >= 3, timeout_s=30)
        await until(lambda: len(collector.values("spindle_speed")) >= 10, timeout_s=30)
        await collector.stop()
    feed = [float(v) for v in collector.values("feed")]  # type: ignore[arg-type]
    assert all(b - a > 5.0 for a, b in itertools.pairwise(feed))
    speeds = [float(v) for v in collector.values("spindle_speed")]  # type: ignore[arg-type]
    assert any(b - a < 5.0 for a, b in itertools.pairwise(speeds))
    assert "server refused the deadband of 1 tags (e.g. spindle_speed)" in caplog.text
