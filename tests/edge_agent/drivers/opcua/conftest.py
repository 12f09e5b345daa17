"""Fixtures: a CNC-like asyncua server per test, on a free loopback port, and a state dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from opcua_harness import CncServer, free_port, make_server_cert

from edge_agent.drivers.opcua import SessionOptions


@pytest.fixture
def server_cert(tmp_path: Path) -> tuple[Path, Path]:
    return make_server_cert(tmp_path / "server-pki", "cnc")


# Function loop scope: the server must live on the loop the test runs on.
@pytest_asyncio.fixture(loop_scope="function")
async def cnc(server_cert: tuple[Path, Path]) -> AsyncIterator[CncServer]:
    server = CncServer(port=free_port(), cert=server_cert)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def options(tmp_path: Path) -> SessionOptions:
    return SessionOptions(state_dir=tmp_path / "state", timeout_s=5.0)
