"""Test helpers: a private Mosquitto per test and a receipt responder standing in for the hub."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

import wire
from edge_agent.buffer import Reading


async def eventually(predicate: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    """Poll `predicate` until true; for state owned by another thread or process."""
    async with asyncio.timeout(within):
        while not await predicate():  # noqa: ASYNC110 -- no event to wait on across threads
            await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    """A Mosquitto process we own, on 127.0.0.1 and a free port."""

    workdir: Path
    persistence: bool = True
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            f"persistence {'true' if self.persistence else 'false'}\n"
            f"persistence_location {self.workdir}/\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 0\n"
            "log_dest stderr\n"
        )
        with (self.workdir / "mosquitto.log").open("ab") as logfile:
            self.proc = subprocess.Popen(
                ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=logfile
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited: {(self.workdir / 'mosquitto.log').read_text()}"
                )
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


class Responder:
    """Subscribes to telemetry like the hub, records readings, publishes receipts."""

    def __init__(self, broker: Broker, *, delay: float = 0.0, client_id: str = "responder") -> None:
        self.broker = broker
        self.delay = delay
        self.client_id = client_id
        self.suppress = False  # True: record but never answer (a hub that is down)
        self.batches: list[dict[str, Any]] = []
        self.readings: dict[str, set[tuple[str, int]]] = defaultdict(set)
        self.count = 0  # readings received including duplicates
        self.seqs_seen: list[int] = []
        self.statuses: list[dict[str, Any]] = []
        self.metas: dict[str, dict[str, Any]] = {}  # machine → its newest meta message
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Responder:
        self._task = asyncio.create_task(self._run(), name="responder")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        for t in self._pending:
            t.cancel()

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.broker.port, identifier=self.client_id, clean_session=False
                ) as client:
                    await client.subscribe("ms/v1/+/+/+/telemetry", qos=1)
                    await client.subscribe("ms/v1/agents/+/status", qos=1)
                    await client.subscribe("ms/v1/+/+/+/meta", qos=1)
                    async for msg in client.messages:
                        self._handle(client, msg)
                        # aiomqtt hands over queued messages without suspending: without this a
                        # backlog of hundreds of batches is one long step of the shared loop
                        # (seen as 0.65 s of CPU in test_loop_lag on a loaded machine).
                        await asyncio.sleep(0)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def _handle(self, client: aiomqtt.Client, msg: aiomqtt.Message) -> None:
        assert isinstance(msg.payload, bytes)
        body = json.loads(msg.payload)
        if msg.topic.matches("ms/v1/agents/+/status"):
            self.statuses.append(body)
            self.changed.set()
            return
        machine = str(msg.topic).split("/")[4]
        if msg.topic.matches("ms/v1/+/+/+/meta"):
            self.metas[machine] = body
            self.changed.set()
            return
        self.batches.append(body)
        self.seqs_seen.append(body["seq"])
        for r in body["readings"]:
            self.readings[machine].add((r["tag"], r["ts"]))
        self.count += len(body["readings"])
        self.changed.set()
        if not self.suppress:
            digest = wire.batch_digest(msg.payload)
            task = asyncio.create_task(self._receipt(client, body["src"], body["seq"], digest))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _receipt(self, client: aiomqtt.Client, src: str, seq: int, digest: str) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(
                f"ms/v1/receipts/{src}", wire.encode_receipt([(seq, seq)], [(seq, digest)]), qos=1
            )

    def total(self) -> int:
        return sum(len(v) for v in self.readings.values())

    async def wait_for(self, predicate: Any, within: float = 30) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


class JsonContract:
    """Wire contract v1 for tests, with plain-JSON receipts and status."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.status_topic = f"ms/v1/agents/{src}/status"
        self.receipt_topic = f"ms/v1/receipts/{src}"

    def batch_topic(self, device: str) -> str:
        return f"ms/v1/site/line/{device}/telemetry"

    def encode_batch(self, device: str, seq: int, readings: list[Reading]) -> bytes:
        return wire.encode_telemetry(self.src, seq, readings)

    def parse_receipt(self, payload: bytes) -> list[tuple[int, str]]:
        return [(seq, digest) for seq, digest in json.loads(payload).get("sha256", [])]

    def offline_status(self) -> bytes:
        return json.dumps({"v": 1, "state": "offline"}).encode()
