"""The OPC-UA side of the simulated plant, seen by a real asyncua client."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import pytest
from _sim_helpers import PROFILES, now_ms
from asyncua import Client, ua

from edge_agent.config import OpcUaProfile, load_profile
from edge_agent.simulators import Simulator, read_truth, request

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _profile_paths() -> dict[str, str]:
    profile, problems = load_profile(PROFILES / "sim-cnc-mill.yaml")
    assert not problems, problems
    assert isinstance(profile, OpcUaProfile)
    return {t.name: t.browse_path for t in profile.tags if t.browse_path}


async def _node(client: Client, path: str) -> Any:
    # "/Objects/2:cnc-01/2:Spindle/2:Speed" -> child path from the root node.
    return await client.nodes.root.get_child(["0:Objects", *path.split("/")[2:]])


async def control(sim: Simulator, **req: Any) -> dict[str, Any]:
    assert sim.control is not None
    answer: dict[str, Any] = await request(sim.control.host, sim.control.port, req)
    assert answer["ok"], answer
    return answer


async def test_every_profile_browse_path_resolves_to_the_served_node(sim: Simulator) -> None:
    assert sim.opcua is not None
    expected = sim.node_ids("cnc-01")
    async with Client(sim.opcua.url, timeout=10) as client:
        for name, path in _profile_paths().items():
            node = await _node(client, path)
            assert node.nodeid.to_string() == expected[name][0]


async def test_values_carry_source_timestamps_that_match_the_truth_file(sim: Simulator) -> None:
    assert sim.opcua is not None
    assert sim.truth is not None
    async with Client(sim.opcua.url, timeout=10) as client:
        reads = {}
        for name, path in _profile_paths().items():
            dv = await (await _node(client, path)).read_data_value()
            reads[name] = dv
    await sim.next_tick()
    await sim.next_tick()
    truth = {
        (r["tag"], r["ts"]): r["value"]
        for r in read_truth(sim.truth.path)
        if r["machine"] == "cnc-01"
    }
    for name, dv in reads.items():
        assert dv.StatusCode.is_good()
        ts = dv.SourceTimestamp.replace(tzinfo=dt.UTC)
        ts_ms = round(ts.timestamp() * 1000)
        assert abs(ts_ms - now_ms()) < 60_000
        assert truth[(name, ts_ms)] == dv.Value.Value, name
    assert reads["model"].Value.Value == "VMC-850 SIM"
    assert 0 <= reads["spindle_speed"].Value.Value <= 15000
    assert reads["program_state"].Value.Value in ("RUNNING", "IDLE")


async def test_dropout_reads_bad_and_spike_is_visible(sim: Simulator) -> None:
    assert sim.opcua is not None
    paths = _profile_paths()
    async with Client(sim.opcua.url, timeout=10) as client:
        temp = await _node(client, paths["spindle_temp"])
        normal = (await temp.read_data_value()).Value.Value
        await control(
            sim,
            cmd="inject",
            machine="cnc-01",
            tag="spindle_temp",
            kind="spike",
            magnitude=500,
            duration=30,
        )
        await sim.next_tick()
        await sim.next_tick()
        assert (await temp.read_data_value()).Value.Value > normal + 400

        load = await _node(client, paths["spindle_load"])
        await control(sim, cmd="inject", machine="cnc-01", tag="spindle_load", kind="dropout")
        await sim.next_tick()
        await sim.next_tick()
        dv = await load.read_data_value(raise_on_bad_status=False)
        assert dv.StatusCode.value == ua.StatusCodes.BadSensorFailure


async def _first_failure(client: Client, sim: Simulator) -> BaseException | None:
    """Keep using the session tick by tick until a request fails; return that failure."""
    for _ in range(200):
        try:
            await client.nodes.root.read_browse_name()
        except (ConnectionError, TimeoutError, ua.UaError) as exc:
            return exc
        await sim.next_tick()
    return None


async def test_restart_drops_sessions_and_renumbers_node_ids_behind_browse_paths(
    sim: Simulator,
) -> None:
    assert sim.opcua is not None
    path = _profile_paths()["spindle_speed"]
    old_id = sim.node_ids("cnc-01")["spindle_speed"][0]
    restarts = sim.opcua.restarts
    client = Client(sim.opcua.url, timeout=2)
    await client.connect()
    try:
        await control(
            sim, cmd="fault", machine="cnc-01", kind="restart", duration=0.5, renumber=True
        )
        assert await _first_failure(client, sim) is not None
    finally:
        with contextlib.suppress(ConnectionError, TimeoutError, ua.UaError):
            # The server it talked to is gone: there is nothing to close politely.
            await client.disconnect()
    for _ in range(300):
        if sim.opcua.restarts > restarts:
            break
        await sim.next_tick()
    assert sim.opcua.restarts == restarts + 1
    async with Client(sim.opcua.url, timeout=10) as again:
        # Constant values are not re-published: they come back from before the restart.
        model = await _node(again, _profile_paths()["model"])
        assert (await model.read_value()) == "VMC-850 SIM"
        node = await _node(again, path)
        assert node.nodeid.to_string() != old_id
        assert node.nodeid.to_string() == sim.node_ids("cnc-01")["spindle_speed"][0]
        assert (await node.read_data_value()).StatusCode.is_good()
        stale = again.get_node(old_id)
        with pytest.raises(ua.UaStatusCodeError):
            await stale.read_value()


async def test_drop_closes_opcua_connections_and_new_sessions_work(sim: Simulator) -> None:
    assert sim.opcua is not None
    client = Client(sim.opcua.url, timeout=2)
    await client.connect()
    try:
        reply = await control(sim, cmd="fault", machine="cnc-01", kind="drop")
        assert reply["fault"]["closed"] >= 1
        assert await _first_failure(client, sim) is not None
    finally:
        with contextlib.suppress(ConnectionError, TimeoutError, ua.UaError):
            await client.disconnect()
    async with Client(sim.opcua.url, timeout=10) as again:
        node = await _node(again, _profile_paths()["part_count"])
        assert (await node.read_data_value()).StatusCode.is_good()


async def test_modbus_only_faults_are_refused_for_the_cnc(sim: Simulator) -> None:
    assert sim.control is not None
    answer = await request(
        sim.control.host, sim.control.port, {"cmd": "fault", "machine": "cnc-01", "kind": "slow"}
    )
    assert not answer["ok"]
    assert "drop and restart" in answer["error"]
