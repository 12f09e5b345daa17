"""A machine that stops answering is shown offline everywhere within 10 s, and online again within
10 s of coming back: `edge-agent run` over a real Modbus TCP simulator (frozen with SIGSTOP, then
killed and restarted), Mosquitto, a whole hub on PostgreSQL.

The four views an engineer or a tool reads: the agent's status file (what `edge-agent status`
shows), its Prometheus metrics, the machine's retained wire status and the hub's fleet API.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from apitest import PASSWORD, free_port, migrate, running_hub, unique
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

import wire
from hub.auth import AuthStore, Role, hash_password
from hub.sql import open_database
from tests.harness.devicestate import simulated_plant_config, socat_pty_pair

pytestmark = pytest.mark.asyncio(loop_scope="session")

EDGE_AGENT = str(Path(sys.executable).with_name("edge-agent"))
MACHINE = "press-01"
WITHIN_S = 10.0


class Simulator:
    """`edge-agent simulate`: Modbus TCP machines on consecutive ports from `modbus`, the fifth
    machine (cnc-01) on OPC-UA at `opcua`."""

    def __init__(self, workdir: Path, machines: int = 2) -> None:
        self.workdir = workdir
        self.machines = machines
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = False
        self._pick_ports()

    def _pick_ports(self) -> None:
        # Machine k listens on modbus + k: an OPC-UA or control port among those would collide
        # (free ports often come in sequence), and the simulator would not start at all.
        self.modbus = free_port()
        while not all(_port_is_free(self.modbus + k) for k in range(self.machines)):
            self.modbus = free_port()
        self.opcua = self._other_port()
        self.control = self._other_port()

    async def start(self) -> None:
        """Start and wait until every machine listens. A free port can be taken before the
        simulator binds it (by any client's outgoing connection, as the hub opens a dozen): on
        the first start it then moves to other ports; on a restart it retries the same ones."""
        for _attempt in range(5):
            if await self._started():
                self.started = True
                return
            if not self.started:
                self._pick_ports()
            await asyncio.sleep(0.5)
        raise AssertionError(f"the simulator did not start:\n{self._log().read_text()[-3000:]}")

    async def _started(self) -> bool:
        log = self._log()
        offset = log.stat().st_size if log.exists() else 0
        self.proc = self._launch(log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with log.open("rb") as f:
                f.seek(offset)
                if b"control: " in f.read():
                    return True
            if self.proc.poll() is not None:
                return False
            await asyncio.sleep(0.1)
        self.kill()
        return False

    def _launch(self, log: Path) -> subprocess.Popen[bytes]:
        args = ["--machines", str(self.machines), "--modbus-port", str(self.modbus)]
        args += ["--opcua-port", str(self.opcua), "--control-port", str(self.control)]
        with log.open("ab") as out:
            return subprocess.Popen(
                [EDGE_AGENT, "simulate", *args],
                stdout=out,
                stderr=out,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},  # its "control:" line is the cue
            )

    def _log(self) -> Path:
        return self.workdir / "sim.log"

    def _other_port(self) -> int:
        """A free port outside the Modbus machines' consecutive ports."""
        port = free_port()
        while self.modbus <= port < self.modbus + self.machines:
            port = free_port()
        return port

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def simulator(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Simulator]:
    """A plant of 2 machines, or as many as `@pytest.mark.machines(n)` asks; killed afterwards."""
    marker = request.node.get_closest_marker("machines")
    sim = Simulator(tmp_path, machines=marker.args[0] if marker else 2)
    try:
        yield sim
    finally:
        sim.kill()


class Views:
    """What each of the four views says about one machine right now: (state, reason)."""

    def __init__(
        self, http: httpx.AsyncClient, status_file: Path, metrics_port: int, name: str = MACHINE
    ) -> None:
        self.name = name
        self.http = http
        self.status_file = status_file
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.wire: tuple[str, str | None] | None = None  # set by the MQTT subscriber

    def on_message(self, _c: object, _u: object, msg: paho.MQTTMessage) -> None:
        if msg.payload:
            status = wire.parse_status(msg.topic, bytes(msg.payload))
            self.wire = (status.state, status.detail)

    async def agent(self) -> tuple[str, str | None] | None:
        try:
            doc = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return None
        device = doc["devices"].get(self.name)
        return None if device is None else (device["state"], device["why"])

    async def metrics(self) -> tuple[str, str | None] | None:
        try:
            text = (await self.http.get(self.metrics_url)).text
        except httpx.HTTPError:
            return None
        line = f'millstream_agent_device_online{{device="{self.name}"}} '
        for row in text.splitlines():
            if row.startswith(line):
                return ("online" if float(row.split()[-1]) == 1 else "offline", None)
        return None

    async def fleet(self, site: str) -> tuple[str, str | None] | None:
        return await self.machine(site, self.name)

    async def machine(self, site: str, machine: str) -> tuple[str, str]:
        """The hub's judgement of one machine: (state, reason); ("absent", "") if unknown."""
        # /machines lists every machine of every site (it takes no filter): pick this site's,
        # or a namesake another test left retained on the shared broker would answer instead.
        r = await self.http.get("/api/v1/machines")
        r.raise_for_status()
        for m in r.json():
            if (m["site"], m["machine"]) == (site, machine):
                return (m["state"], m["reason"])
        return ("absent", "")

    async def all(self, site: str) -> dict[str, tuple[str, str | None] | None]:
        return {
            "agent status": await self.agent(),
            "metrics": await self.metrics(),
            "wire status": self.wire,
            "hub fleet": await self.fleet(site),
        }


async def seconds_until_all(
    views: Views, site: str, state: str, within: float, check: Callable[[str | None], bool]
) -> dict[str, float]:
    """Seconds until each view says `state` (with a reason passing `check` where it has one)."""
    started = time.monotonic()
    reached: dict[str, float] = {}
    last: dict[str, Any] = {}
    while len(reached) < 4 and time.monotonic() - started < within:
        last = await views.all(site)
        for name, said in last.items():
            fits = said is not None and said[0] == state and (name == "metrics" or check(said[1]))
            if name not in reached and fits:
                reached[name] = time.monotonic() - started
        await asyncio.sleep(0.2)
    assert len(reached) == 4, f"not {state} within {within} s: {last} (reached: {reached})"
    return reached


def assert_within(timings: dict[str, dict[str, float]]) -> None:
    """Print the measured seconds per step and view, and hold each to the 10 s promise."""
    print(json.dumps(timings, indent=1))
    for step, reached in timings.items():
        for view, seconds in reached.items():
            assert seconds <= WITHIN_S, f"{step}: {view} took {seconds:.1f} s"


def plant_config(sim: Simulator, folder: Path, mqtt_url: str, site: str) -> Path:
    """The simulator's agent config, pointed at the test broker under a site of its own."""
    config = simulated_plant_config(
        folder, sim.modbus, mqtt_url, unique("pc-"), machines=sim.machines, opcua_port=sim.opcua
    )
    config.write_text(config.read_text().replace("site: sim-plant", f"site: {site}"))
    return config


def start_agent(config: Path, metrics_port: int, log: Path) -> subprocess.Popen[bytes]:
    """`edge-agent run` as a service runs it, with metrics on."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [EDGE_AGENT, "run", str(config), "--metrics-port", str(metrics_port)],
            stdout=out,
            stderr=out,
        )


def status_text(config: Path) -> str:
    """What `edge-agent status` prints."""
    done = subprocess.run(
        [EDGE_AGENT, "status", str(config)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def eventually(check: Callable[[], Awaitable[bool]], within: float) -> None:
    """Poll `check` until true (a liveness bound, not a measurement)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 -- the state is in another process's answer
            await asyncio.sleep(0.2)


async def seconds_until_fleet(
    views: Views, site: str, machine: str, state: str, within: float
) -> float:
    """Seconds until the hub's fleet view says `state` for `machine`."""
    started = time.monotonic()
    said: tuple[str, str] = ("absent", "")
    while time.monotonic() - started < within:
        said = await views.machine(site, machine)
        if said[0] == state:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise AssertionError(f"{machine} not {state} within {within} s: {said}")


async def clear_retained(mosquitto: Any, site: str, machines: list[str]) -> None:
    """Leave the shared broker clean: no retained status or meta of this test's site."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("clean-"))
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        for machine in machines:
            for topic in (wire.status_topic, wire.meta_topic):
                sent = client.publish(topic(site, "line-1", machine), b"", 1, retain=True)
                await asyncio.to_thread(sent.wait_for_publish, 10)
    finally:
        client.loop_stop()
        client.disconnect()


@asynccontextmanager
async def viewer(base: str, pg_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    async with open_database(pg_dsn) as db:
        await AuthStore(db).add_user("watcher", Role.VIEWER, hash_password(PASSWORD), 0)
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post(
            "/api/v1/auth/login", json={"username": "watcher", "password": PASSWORD}
        )
        r.raise_for_status()
        http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        yield http


async def test_a_silent_machine_is_offline_everywhere_within_10s(
    mosquitto: Any, pg_dsn: str, simulator: Simulator, tmp_path: Path
) -> None:
    site = unique("truth")
    await simulator.start()  # first: it settles its ports, which the config names
    config = plant_config(simulator, tmp_path, mosquitto.url, site)
    status_topic = wire.status_topic(site, "line-1", MACHINE)
    await migrate(pg_dsn)
    metrics_port = free_port()
    subscriber = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("watch-"))
    async with running_hub(mosquitto.url, pg_dsn) as (_hub, base), viewer(base, pg_dsn) as http:
        views = Views(http, tmp_path / "plant" / "state" / "agent-status.json", metrics_port)
        subscriber.on_message = views.on_message
        subscriber.connect(mosquitto.host, mosquitto.port)
        subscriber.subscribe(status_topic, qos=1)
        subscriber.loop_start()
        agent = start_agent(config, metrics_port, tmp_path / "run.log")
        try:
            await seconds_until_all(views, site, "online", 60, lambda _: True)

            simulator.signal(signal.SIGSTOP)  # frozen: the port accepts, nothing answers
            frozen = await seconds_until_all(
                views,
                site,
                "offline",
                30,
                lambda why: (
                    why is not None and f"no answer from 127.0.0.1:{simulator.modbus}" in why
                ),
            )
            simulator.signal(signal.SIGCONT)
            thawed = await seconds_until_all(views, site, "online", 30, lambda _: True)

            simulator.kill()  # gone: the connection drops, reconnects are refused
            killed = await seconds_until_all(
                views, site, "offline", 30, lambda why: why is not None and " since " in why
            )
            await simulator.start()
            back = await seconds_until_all(views, site, "online", 30, lambda _: True)

            simulator.kill()
            await seconds_until_all(views, site, "offline", 30, lambda _: True)
            # What a technician at the line PC reads: the device, its state and why.
            [line] = [row for row in status_text(config).splitlines() if MACHINE in row]
            assert " OFFLINE " in line
            assert f"why: connection to 127.0.0.1:{simulator.modbus}" in line or (
                f"why: cannot open 127.0.0.1:{simulator.modbus}" in line
            ), line

            # Completeness: the outages are gaps with their reason, not 100 %.
            path = f"/api/v1/machines/{site}/line-1/{MACHINE}/completeness"
            report = (await http.get(path)).json()
            device = [o for o in report["outages"] if o["kind"] == "device"]
            assert len(device) == 3, report["outages"]  # frozen, killed, killed again (ongoing)
            assert f"no answer from 127.0.0.1:{simulator.modbus}" in device[0]["reason"]
            assert device[0]["to_ms"] is not None
            assert device[1]["to_ms"] is not None
            assert device[2]["to_ms"] is None
            assert report["scheduled_per_minute"] > 0
            explained = [m for m in report["minutes"] if m["reason"]]
            assert explained, report["minutes"]
            assert all(m["reason"].startswith("device offline: ") for m in explained)
            assert any(m["stored"] < m["expected"] for m in explained)

            # The agent stops: its machines' missing minutes are the agent's outage from now.
            agent.send_signal(signal.SIGTERM)
            await asyncio.to_thread(agent.wait, 30)

            async def agent_outage() -> bool:
                outages = (await http.get(path)).json()["outages"]
                return any(o["kind"] == "agent" and o["to_ms"] is None for o in outages)

            await eventually(agent_outage, 20)
        finally:
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
                agent.wait(timeout=30)
            await clear_retained(mosquitto, site, [MACHINE, "conveyor-01"])
            subscriber.loop_stop()
            subscriber.disconnect()
    assert_within({"frozen": frozen, "thawed": thawed, "killed": killed, "restarted": back})


@pytest.mark.machines(5)
async def test_a_stopped_opcua_server_is_offline_everywhere_within_10s(
    mosquitto: Any, pg_dsn: str, simulator: Simulator, tmp_path: Path
) -> None:
    # The simulated plant's fifth machine, cnc-01, speaks OPC-UA: its server goes away with the
    # simulator and comes back with it.
    site = unique("truth")
    await simulator.start()  # first: it settles its ports, which the config names
    config = plant_config(simulator, tmp_path, mosquitto.url, site)
    # A 3 s request timeout: offline after max(3 × fastest sampling, 3 s + 2 s) = 5 s, leaving
    # the 10 s promise a margin on a loaded CI machine. (With the default 5 s it is 7 s: measured
    # 7.9 s to every view.)
    text = config.read_text().replace("security: None}", "security: None, timeout_ms: 3000}")
    config.write_text(text)
    machines = ["press-01", "conveyor-01", "oven-01", "compressor-01", "cnc-01"]
    await migrate(pg_dsn)
    metrics_port = free_port()
    subscriber = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("watch-"))
    async with (
        running_hub(mosquitto.url, pg_dsn) as (_hub, base),
        viewer(base, pg_dsn) as http,
    ):
        status_file = tmp_path / "plant" / "state" / "agent-status.json"
        views = Views(http, status_file, metrics_port, "cnc-01")
        subscriber.on_message = views.on_message
        subscriber.connect(mosquitto.host, mosquitto.port)
        subscriber.subscribe(wire.status_topic(site, "line-1", "cnc-01"), qos=1)
        subscriber.loop_start()
        agent = start_agent(config, metrics_port, tmp_path / "run.log")
        try:
            await seconds_until_all(views, site, "online", 90, lambda _: True)
            url = f"opc.tcp://127.0.0.1:{simulator.opcua}"
            simulator.kill()
            stopped = await seconds_until_all(
                views, site, "offline", 30, lambda why: why is not None and url in why
            )
            await simulator.start()
            back = await seconds_until_all(views, site, "online", 30, lambda _: True)
        finally:
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
                agent.wait(timeout=30)
            await clear_retained(mosquitto, site, machines)
            subscriber.loop_stop()
            subscriber.disconnect()
    assert_within({"stopped": stopped, "restarted": back})


RTU_PROFILE = """
profile: rtu-meter
vendor: Millstream tests
model: a meter on an RS-485 line
protocol: modbus
source: this test
defaults: {poll_ms: 500}
tags:
  - {name: level, table: holding, address: 0, type: uint16}
  - {name: temp, table: holding, address: 1, type: uint16}
"""


@asynccontextmanager
async def rtu_unit(tty: str) -> AsyncIterator[None]:
    """Unit 1 answering on one end of a pty pair (the other end is the agent's serial port)."""
    device = SimDevice(
        id=1,
        simdata=(
            [SimData(0, values=[False], datatype=DataType.BITS)],
            [SimData(0, values=[False], datatype=DataType.BITS)],
            [SimData(0, values=[150, 21], datatype=DataType.REGISTERS)],
            [SimData(0, count=1, datatype=DataType.INVALID)],
        ),
    )
    server = ModbusSerialServer([device], port=tty, baudrate=115200)
    await server.serve_forever(background=True)
    try:
        yield
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


@pytest.fixture
def pty_pair() -> Iterator[tuple[str, str]]:
    with socat_pty_pair() as pair:
        yield pair


async def test_an_rtu_unit_that_stops_answering_is_offline_everywhere_within_10s(
    mosquitto: Any, pg_dsn: str, tmp_path: Path, pty_pair: tuple[str, str]
) -> None:
    server_end, agent_end = pty_pair
    site = unique("truth")
    (tmp_path / "rtu-meter.yaml").write_text(RTU_PROFILE)
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"agent: {{id: {unique('pc-')}, site: {site}, line: line-1}}\n"
        f'mqtt: {{url: "{mosquitto.url}"}}\n'
        "buffer: {path: ./buffer.db}\n"
        "devices:\n"
        "  - machine: meter-01\n"
        "    profile: ./rtu-meter.yaml\n"
        f"    modbus: {{serial: {agent_end}, baudrate: 115200, unit: 1, timeout_ms: 1000}}\n"
    )
    await migrate(pg_dsn)
    metrics_port = free_port()
    subscriber = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("watch-"))
    async with running_hub(mosquitto.url, pg_dsn) as (_hub, base), viewer(base, pg_dsn) as http:
        views = Views(http, tmp_path / "state" / "agent-status.json", metrics_port, "meter-01")
        subscriber.on_message = views.on_message
        subscriber.connect(mosquitto.host, mosquitto.port)
        subscriber.subscribe(wire.status_topic(site, "line-1", "meter-01"), qos=1)
        subscriber.loop_start()
        agent = start_agent(config, metrics_port, tmp_path / "run.log")
        try:
            async with rtu_unit(server_end):
                await seconds_until_all(views, site, "online", 60, lambda _: True)
            silent = await seconds_until_all(
                views,
                site,
                "offline",
                30,
                lambda why: why is not None and f"no reply from unit 1 on {agent_end}" in why,
            )
            async with rtu_unit(server_end):
                back = await seconds_until_all(views, site, "online", 30, lambda _: True)
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=30)
            await clear_retained(mosquitto, site, ["meter-01"])
            subscriber.loop_stop()
            subscriber.disconnect()
    assert_within({"silent": silent, "answering": back})


STEADY_PROFILE = """
profile: steady-tank
vendor: Millstream tests
model: a tank level that holds still
protocol: modbus
source: this test
defaults: {poll_ms: 1000, max_interval: 20s}
tags:
  - {name: level, table: holding, address: 0, type: uint16, unit: cm, deadband: 2}
  - {name: temp, table: holding, address: 1, type: uint16, unit: °C, deadband: 1}
"""


@asynccontextmanager
async def steady_modbus_server() -> AsyncIterator[int]:
    """A Modbus TCP server whose two holding registers never change; yields its port."""
    port = free_port()
    device = SimDevice(
        id=1,
        simdata=(
            [SimData(0, values=[False], datatype=DataType.BITS)],
            [SimData(0, values=[False], datatype=DataType.BITS)],
            [SimData(0, values=[150, 21], datatype=DataType.REGISTERS)],
            [SimData(0, count=1, datatype=DataType.INVALID)],
        ),
    )
    server = ModbusTcpServer([device], address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    try:
        yield port
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


@pytest.mark.slow
@pytest.mark.timeout(600)  # watched for 5 minutes, as the issue asks
async def test_a_steady_deadbanded_machine_stays_online_for_5_minutes(
    mosquitto: Any, pg_dsn: str, tmp_path: Path
) -> None:
    # Every tag deadbanded and the values never move: without a heartbeat the machine would
    # send one reading per tag and be called stale after a minute.
    site = unique("steady")
    (tmp_path / "steady-tank.yaml").write_text(STEADY_PROFILE)
    await migrate(pg_dsn)
    metrics_port = free_port()
    async with (
        steady_modbus_server() as port,
        running_hub(mosquitto.url, pg_dsn) as (_hub, base),
        viewer(base, pg_dsn) as http,
    ):
        config = tmp_path / "agent.yaml"
        config.write_text(
            f"agent: {{id: {unique('pc-')}, site: {site}, line: line-1}}\n"
            f'mqtt: {{url: "{mosquitto.url}"}}\n'
            "buffer: {path: ./buffer.db}\n"
            "devices:\n"
            "  - machine: tank-01\n"
            "    profile: ./steady-tank.yaml\n"
            f"    modbus: {{host: 127.0.0.1, port: {port}, unit: 1}}\n"
        )
        agent = start_agent(config, metrics_port, tmp_path / "run.log")
        views = Views(http, tmp_path / "state" / "agent-status.json", metrics_port)
        try:
            await seconds_until_fleet(views, site, "tank-01", "online", 60)
            watched_from = time.monotonic()
            judged: list[tuple[float, str, str]] = []
            while time.monotonic() - watched_from < 300:
                state, reason = await views.machine(site, "tank-01")
                judged.append((round(time.monotonic() - watched_from), state, reason))
                await asyncio.sleep(5)
            series = (await http.get("/api/v1/series", params={"site": site})).json()
            level = next(s for s in series if s["tag"] == "level")
            history = (await http.get(f"/api/v1/series/{level['id']}/readings")).json()
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=30)
            await clear_retained(mosquitto, site, ["tank-01"])
    assert len(judged) >= 55
    not_online = [j for j in judged if j[1] != "online"]
    assert not not_online, not_online
    # The heartbeat, not a changing value, kept it fresh: one value, re-sent every ~20 s.
    assert history["resolution"] == "raw"
    points = history["raw"]
    values = {p["v"] for p in points}
    assert values == {150}
    assert len(points) >= 300 // 20 - 1, len(points)
