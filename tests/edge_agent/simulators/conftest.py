"""A running simulated plant per test module (fixtures only; helpers in _sim_helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from edge_agent.simulators import Simulator, SimulatorOptions


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sim(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Simulator]:
    """One machine of each type on free ports, with a truth file and a control interface.

    A module sets SIM_MACHINES = 4 to skip the CNC and with it the OPC-UA server's start-up.
    """
    truth = tmp_path_factory.mktemp("sim") / "truth.jsonl"
    machines = getattr(request.module, "SIM_MACHINES", 5)
    options = SimulatorOptions(
        machines=machines, seed=11, modbus_port=0, opcua_port=0, control_port=0, truth=truth
    )
    async with Simulator(options) as s:
        yield s


@pytest.fixture(autouse=True)
def _clean_slate(request: pytest.FixtureRequest) -> Iterator[None]:
    """Anomalies and faults one test starts never leak into the next."""
    yield
    if "sim" in request.fixturenames:
        s: Simulator = request.getfixturevalue("sim")
        s.plant.clear_anomalies()
        s.faults.clear()
