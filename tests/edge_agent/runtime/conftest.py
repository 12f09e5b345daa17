"""Fixtures for runtime tests: broker, responder, and the agent as a subprocess."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "publish"))

from agent_harness import AgentProcess  # noqa: E402
from mqtt_harness import Broker  # noqa: E402


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.kill()


@pytest.fixture
def agent(tmp_path: Path, broker: Broker) -> Iterator[AgentProcess]:
    a = AgentProcess(tmp_path / "agent", broker)
    yield a
    if a.proc is not None:
        a.kill()
