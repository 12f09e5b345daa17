"""Fixtures for publisher tests: a private broker per test and a stand-in contract."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_harness import Broker

from edge_agent.buffer import Reading


class JsonContract:
    """Wire contract v1 as the tests see it (the runtime's real one uses the `wire` package)."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.status_topic = f"ms/v1/agents/{src}/status"
        self.receipt_topic = f"ms/v1/receipts/{src}"

    def telemetry_topic(self, device: str) -> str:
        return f"ms/v1/site/line/{device}/telemetry"

    def encode_batch(self, device: str, seq: int, readings: list[Reading]) -> bytes:
        rs = [{"tag": r.tag, "ts": r.ts, "v": r.v, "q": r.q} for r in readings]
        return json.dumps({"v": 1, "src": self.src, "seq": seq, "readings": rs}).encode()

    def parse_receipt(self, payload: bytes) -> list[tuple[int, int]]:
        return [(a, b) for a, b in json.loads(payload)["seqs"]]

    def offline_status(self) -> bytes:
        return json.dumps({"v": 1, "state": "offline"}).encode()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.kill()


@pytest.fixture
def volatile_broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", persistence=False)
    b.start()
    yield b
    b.kill()
