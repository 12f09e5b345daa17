"""The simulator's S7 and Logix machines, read by the agent over the real servers (python-snap7's
S7 server in-process, cpppo's CIP server in its child process): `probe --json` reads what the
truth file says was served, `run` publishes moving values of every declared type to Mosquitto,
and anomalies, faults and writes reach them as they do the Modbus machines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import pytest_asyncio
from _sim_helpers import PROFILES, now_ms, served_between

import wire
from edge_agent.config import load_profile
from edge_agent.config.enip_profile import EnipProfile
from edge_agent.config.points import enip_points, s7_points
from edge_agent.config.s7_profile import S7Profile
from edge_agent.drivers.enip.driver import EnipDriver, EnipEndpoint
from edge_agent.drivers.s7.driver import S7Driver, S7Endpoint
from edge_agent.errors import DeviceUnavailable
from edge_agent.simulators import Simulator, SimulatorOptions
from edge_agent.simulators.profiles import agent_config
from millstream_common.backoff import Backoff

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))
S7_MACHINE, LOGIX_MACHINE = "s7-press-01", "logix-conveyor-01"
FAST = Backoff(initial_s=0.05, cap_s=0.2)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def plc_sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Simulator]:
    """A press over Modbus plus the S7 press and the Logix conveyor, on free ports; simulated
    time runs five times faster, so every kind of value moves within seconds."""
    truth = tmp_path_factory.mktemp("plc-sim") / "truth.jsonl"
    options = SimulatorOptions(
        machines=1, seed=7, modbus_port=0, opcua_port=0, control_port=0, s7_port=0,
        enip_port=0, speed=5.0, truth=truth,
    )  # fmt: skip
    async with Simulator(options) as sim:
        yield sim


@pytest.fixture(autouse=True)
def _clean_slate(request: pytest.FixtureRequest) -> Any:
    yield
    if "plc_sim" in request.fixturenames:
        sim: Simulator = request.getfixturevalue("plc_sim")
        sim.plant.clear_anomalies()
        sim.faults.clear()


def _endpoint(sim: Simulator, machine: str) -> dict[str, Any]:
    return next(e for e in sim.endpoints() if e["machine"] == machine)


def _config(sim: Simulator, folder: Path, broker_url: str = "mqtt://127.0.0.1:1") -> Path:
    """What `edge-agent simulate config` writes for this simulator, with a test's broker."""
    ports = {e["machine"]: e.get("port") for e in sim.endpoints()}
    text, _ = agent_config(
        1, ports["press-01"], s7_port=ports[S7_MACHINE], enip_port=ports[LOGIX_MACHINE]
    )
    text = text.replace(
        'mqtt: {url: "mqtt://127.0.0.1:1883"}', f"mqtt: {{url: '{broker_url}', receipts: false}}"
    )
    text = text.replace("path: ./buffer.db", f"path: {folder / 'buffer.db'}")
    path = folder / "plant.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _types(machine: str) -> dict[str, str]:
    """Tag → declared type, from the machine's profile in device_profiles/."""
    name = {S7_MACHINE: "sim-s7-press", LOGIX_MACHINE: "sim-logix-conveyor"}[machine]
    profile, problems = load_profile(PROFILES / f"{name}.yaml")
    assert not problems, problems
    assert isinstance(profile, S7Profile | EnipProfile)
    return {t.name: str(t.type) for t in profile.tags}


def _probe(config: Path, machine: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [EDGE_AGENT, "probe", str(config), "--device", machine, "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("machine", [S7_MACHINE, LOGIX_MACHINE])
async def test_probe_reads_every_tag_as_the_simulator_served_it(
    plc_sim: Simulator, tmp_path: Path, machine: str
) -> None:
    config = _config(plc_sim, tmp_path)
    t0 = now_ms()
    rows = await asyncio.to_thread(_probe, config, machine)
    await plc_sim.next_tick()  # the truth file holds every tick up to the probe's
    await asyncio.sleep(0.2)
    t1 = now_ms()
    assert [r["tag"] for r in rows] == list(_types(machine))
    truth = plc_sim.options.truth
    assert truth is not None
    for row in rows:
        assert row["quality"] == "good", row
        served = served_between(truth, machine, row["tag"], t0, t1)
        assert row["value"] in served, (row, served[-5:])


@pytest.mark.asyncio(loop_scope="session")
async def test_run_publishes_moving_values_of_every_declared_type(
    plc_sim: Simulator, mosquitto_factory: Any, tmp_path: Path
) -> None:
    mosquitto = mosquitto_factory(persistence=False)
    config = _config(plc_sim, tmp_path, mosquitto.url)
    types = {machine: _types(machine) for machine in (S7_MACHINE, LOGIX_MACHINE)}
    # Per machine and declared type: the values its tags were seen with.
    seen: dict[tuple[str, str], set[Any]] = defaultdict(set)

    def moved() -> set[tuple[str, str]]:
        wanted = {(m, t) for m, tags in types.items() for t in tags.values()}
        return {key for key in wanted if len(seen[key]) < 2}

    topics = {wire.telemetry_topic("sim-plant", "line-1", m): m for m in types}
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="plc-sim-test") as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        agent = await asyncio.create_subprocess_exec(
            EDGE_AGENT, "run", str(config), stderr=asyncio.subprocess.PIPE
        )
        try:
            with contextlib.suppress(TimeoutError):  # what never moved is named below
                async with asyncio.timeout(90):
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        topic = str(message.topic)
                        batch = wire.parse_telemetry(
                            topic, message.payload, int(time.time() * 1000)
                        )
                        machine = topics[topic]
                        for reading in batch.readings:
                            if reading.q == "good" and reading.tag in types[machine]:
                                seen[machine, types[machine][reading.tag]].add(
                                    (reading.tag, reading.v)
                                )
                        if not moved():
                            break
        finally:
            agent.terminate()
            _out, err = await agent.communicate()
    assert not moved(), f"never moved: {sorted(moved())}"
    assert agent.returncode == 0, err.decode()[-2000:]


# -- anomalies, faults and writes, through the agent's own drivers -------------------------------


def _s7_driver(sim: Simulator) -> S7Driver:
    profile, _ = load_profile(PROFILES / "sim-s7-press.yaml")
    assert isinstance(profile, S7Profile)
    endpoint = S7Endpoint("127.0.0.1", _endpoint(sim, S7_MACHINE)["port"], timeout_ms=3000)
    return S7Driver(S7_MACHINE, endpoint, s7_points(profile), backoff=FAST)


def _logix_driver(sim: Simulator) -> EnipDriver:
    profile, _ = load_profile(PROFILES / "sim-logix-conveyor.yaml")
    assert isinstance(profile, EnipProfile)
    endpoint = EnipEndpoint("127.0.0.1", _endpoint(sim, LOGIX_MACHINE)["port"], timeout_ms=3000)
    return EnipDriver(LOGIX_MACHINE, endpoint, enip_points(profile), backoff=FAST)


async def _values(driver: S7Driver | EnipDriver) -> dict[str, Any]:
    return {s.tag: (s.value if s.quality == "good" else "bad") for s in await driver.read()}


async def _until(
    driver: S7Driver | EnipDriver, wanted: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The driver's values once they are as `wanted` (within 10 s)."""
    deadline = time.monotonic() + 10
    while not wanted(values := await _values(driver)):
        assert time.monotonic() < deadline, values
        await asyncio.sleep(0.1)
    return values


@pytest.mark.asyncio(loop_scope="session")
async def test_anomalies_reach_the_plc_machines(plc_sim: Simulator) -> None:
    for machine, tag in ((S7_MACHINE, "oil_temp"), (LOGIX_MACHINE, "motor_current")):
        await plc_sim.handle(
            {"cmd": "inject", "machine": machine, "tag": tag, "kind": "out_of_range"}
        )
    await plc_sim.next_tick()
    async with _s7_driver(plc_sim) as s7, _logix_driver(plc_sim) as logix:
        # Past the top of the range: an INT with scale 0.1 saturates at 3276.7 at most.
        assert 80 < (await _values(s7))["oil_temp"] <= 3276.7
        assert (await _values(logix))["motor_current"] > 20
    with pytest.raises(ValueError, match="is a string"):
        await plc_sim.handle(
            {"cmd": "inject", "machine": S7_MACHINE, "tag": "stroke_state", "kind": "spike"}
        )


@pytest.mark.asyncio(loop_scope="session")
async def test_an_s7_exception_refuses_the_read_of_that_tag_until_cleared(
    plc_sim: Simulator,
) -> None:
    async with _s7_driver(plc_sim) as s7:
        answer = await plc_sim.handle(
            {"cmd": "fault", "machine": S7_MACHINE, "kind": "exception", "tag": "oil_temp"}
        )
        assert answer["fault"]["code"] == 5
        with pytest.raises(DeviceUnavailable, match="0x05"):
            await s7.read()
        plc_sim.faults.clear()
        assert "bad" not in (await _values(s7)).values()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_logix_exception_makes_that_tag_bad_and_the_others_stay_good(
    plc_sim: Simulator,
) -> None:
    async with _logix_driver(plc_sim) as logix:
        await plc_sim.handle(
            {"cmd": "fault", "machine": LOGIX_MACHINE, "kind": "exception", "tag": "model"}
        )
        # cpppo's process hears of faults with the next tick's values, a moment later.
        values = await _until(logix, lambda v: v["model"] == "bad")
        assert values["belt_speed"] != "bad"
        plc_sim.faults.clear()
        await _until(logix, lambda v: v["model"] == "BC-1200 LOGIX SIM")


@pytest.mark.asyncio(loop_scope="session")
async def test_slow_answers_are_late(plc_sim: Simulator) -> None:
    async with _s7_driver(plc_sim) as s7, _logix_driver(plc_sim) as logix:
        for machine in (S7_MACHINE, LOGIX_MACHINE):
            await plc_sim.handle(
                {"cmd": "fault", "machine": machine, "kind": "slow", "delay_ms": 600}
            )
        for driver in (s7, logix):
            deadline = time.monotonic() + 10
            while True:  # cpppo's process hears of it a moment after the next tick
                started = time.monotonic()
                await driver.read()
                if time.monotonic() - started >= 0.5:
                    break
                assert time.monotonic() < deadline, f"{driver.device} never slow"


async def _refused(port: int) -> None:
    """Wait until the port refuses connections (the fault has stopped its server)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        writer.close()
        assert time.monotonic() < deadline, f"port {port} still listening"
        await asyncio.sleep(0.05)


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("kind", ["drop", "offline"])
async def test_drop_and_offline_break_the_connection_and_the_driver_comes_back(
    plc_sim: Simulator, kind: str
) -> None:
    async with _s7_driver(plc_sim) as s7, _logix_driver(plc_sim) as logix:
        await s7.read()
        await logix.read()
        for machine in (S7_MACHINE, LOGIX_MACHINE):
            await plc_sim.handle({"cmd": "fault", "machine": machine, "kind": kind, "duration": 3})
        if kind == "offline":
            for machine in (S7_MACHINE, LOGIX_MACHINE):
                await _refused(_endpoint(plc_sim, machine)["port"])
            with pytest.raises(DeviceUnavailable):
                await s7.read()
            with pytest.raises(DeviceUnavailable):
                await logix.read()
        deadline = time.monotonic() + 30
        for driver in (s7, logix):
            while True:
                with contextlib.suppress(DeviceUnavailable):
                    samples = await driver.read()
                    if samples and all(s.quality == "good" for s in samples):
                        break
                assert time.monotonic() < deadline, f"{driver.device} never came back"
                await asyncio.sleep(0.2)
    assert all(e.get("port") for e in plc_sim.endpoints())


@pytest.mark.asyncio(loop_scope="session")
async def test_a_written_logix_setpoint_drives_the_model(plc_sim: Simulator) -> None:
    conveyor = plc_sim.plant.machine(LOGIX_MACHINE)
    async with _logix_driver(plc_sim) as logix:
        try:
            _before, after = await logix.write("speed_setpoint", 0.5)
            assert after == 0.5
            deadline = time.monotonic() + 10
            while getattr(conveyor, "setpoint", None) != 0.5:
                assert time.monotonic() < deadline, "the model never took the setpoint"
                await asyncio.sleep(0.05)
            await plc_sim.next_tick()
            assert plc_sim.current(LOGIX_MACHINE)["speed_setpoint"] == 0.5
        finally:
            await logix.write("speed_setpoint", 1.2)


@pytest.mark.asyncio(loop_scope="session")
async def test_status_names_where_the_plcs_listen(plc_sim: Simulator) -> None:
    status = await plc_sim.handle({"cmd": "status"})
    by_name = {m["machine"]: m for m in status["machines"]}
    assert by_name[S7_MACHINE] | {"port": 0} == {
        "machine": S7_MACHINE, "kind": "s7-press", "protocol": "s7", "host": "127.0.0.1",
        "port": 0, "rack": 0, "slot": 1,
    }  # fmt: skip
    assert by_name[LOGIX_MACHINE]["protocol"] == "enip"
    assert by_name[LOGIX_MACHINE]["slot"] == 0
    assert by_name[LOGIX_MACHINE]["port"] > 0


def test_without_cpppo_the_logix_machine_is_refused_with_the_next_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import edge_agent.simulators.enip_server as enip_server  # noqa: PLC0415 - patched here

    monkeypatch.setattr(enip_server.importlib.util, "find_spec", lambda _name: None)
    with pytest.raises(ValueError, match=r"pip install cpppo\), or leave out --enip-port"):
        Simulator(SimulatorOptions(machines=1, enip_port=0))
