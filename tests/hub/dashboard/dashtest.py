"""The pipeline the dashboard tests look at, started for real: simulator (in-process, Modbus) →
`edge-agent run` → a private Mosquitto → `millstream-hub serve` on PostgreSQL. Shared by the
Chromium and the Firefox test; the `procs` fixture (conftest.py) stops what they start. `chromium`
opens Debian's Chromium for Playwright and `watch` collects a page's errors and off-origin
requests, for every Chromium test."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion
from playwright.async_api import BrowserContext, Page, Request, async_playwright

from edge_agent.simulators import Simulator, SimulatorOptions, request
from tests.harness import Mosquitto, free_port

BIN = Path(sys.executable).parent
ADMIN, PASSWORD = "engineer", "pressing matters 42"
LINE = "line-1"


class Proc:
    """A subprocess with its stderr in a file; stopped by PID at teardown."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            argv, stdout=self._out, stderr=self._out, stdin=subprocess.DEVNULL
        )

    def text(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()


def hub_cli(*args: str, stdin: str | None = None) -> str:
    """Run `millstream-hub ARGS`; its stdout."""
    done = subprocess.run(
        [str(BIN / "millstream-hub"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass(frozen=True)
class BrokerLogin:
    """A broker user name and the file holding its password (`mqtt.password_file`)."""

    username: str
    password_file: Path

    def yaml(self) -> str:
        """The `mqtt` config keys, as YAML flow-mapping entries."""
        return f"username: {self.username}, password_file: '{self.password_file}'"


def write_hub_config(
    tmp_path: Path,
    broker: Mosquitto,
    dsn: str,
    port: int,
    *,
    jwt_secret: str | None = None,
    login: BrokerLogin | None = None,
    extra: str = "",
) -> Path:
    path = tmp_path / "hub.yaml"
    secret = jwt_secret or f"{uuid.uuid4().hex}{uuid.uuid4().hex}"
    path.write_text(
        f"mqtt: {{url: '{broker.url}', client_id: hub-{uuid.uuid4().hex[:8]}"
        f"{', ' + login.yaml() if login else ''}}}\n"
        f"storage: '{dsn}'\n"
        f"http: {{host: 127.0.0.1, port: {port}}}\n"
        "flush_ms: 20\n"
        f"jwt_secret: {secret}\n" + extra
    )
    return path


def write_agent_config(
    tmp_path: Path,
    broker: Mosquitto,
    site: str,
    sim: Simulator,
    *,
    login: BrokerLogin | None = None,
) -> Path:
    profiles = {"press": "sim-hydraulic-press", "conveyor": "sim-conveyor"}
    lines = [
        f"agent: {{id: pc-{site}, site: {site}, line: {LINE}}}",
        f"mqtt: {{url: '{broker.url}', status_interval: 2s, receipt_timeout: 10s"
        f"{', ' + login.yaml() if login else ''}}}",
        "buffer: {path: ./buffer.db, max_bytes: 64MiB, max_age: 1d}",
        "devices:",
    ]
    for ep in sim.endpoints():
        lines += [
            f"  - machine: {ep['machine']}",
            f"    profile: {profiles[ep['machine'].split('-')[0]]}",
            f"    modbus: {{host: {ep['host']}, port: {ep['port']}, unit: {ep['unit']}}}",
        ]
    path = tmp_path / "agent" / "agent.yaml"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    return path


def publish_once(broker: Mosquitto, topic: str, payload: bytes) -> None:
    client = Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


async def wait_ready(base: str, hub: Proc) -> None:
    async with httpx.AsyncClient() as client:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert hub.proc.poll() is None, hub.text()
            try:
                if (await client.get(f"{base}/health/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    pytest.fail(f"hub not ready: {hub.text()}")


def artifacts(tmp_path: Path) -> Path:
    out = Path(os.environ.get("ARTIFACTS_DIR") or tmp_path / "artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass(frozen=True)
class Plant:
    base: str  # the hub's http://127.0.0.1:PORT
    site: str
    machines: list[str]  # "site/line/machine" of every simulated machine
    sim: Simulator
    hub: Proc
    agent: Proc
    agent_started: float  # wall clock just before the agent started
    hub_config: Path


@asynccontextmanager
async def running_plant(
    broker: Mosquitto,
    dsn: str,
    tmp_path: Path,
    procs: list[Proc],
    *,
    site_prefix: str,
    seed: int,
    jwt_secret: str | None = None,
    hub_login: BrokerLogin | None = None,
    agent_login: BrokerLogin | None = None,
    hub_extra: str = "",
) -> AsyncIterator[Plant]:
    """Two simulated machines polled by an agent into a hub with one admin user, hub ready.

    A broker that takes only known users needs `hub_login` and `agent_login`.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    site = f"{site_prefix}{uuid.uuid4().hex[:6]}"
    config = write_hub_config(
        tmp_path, broker, dsn, port, jwt_secret=jwt_secret, login=hub_login, extra=hub_extra
    )
    await asyncio.to_thread(hub_cli, "migrate", "--config", str(config))
    await asyncio.to_thread(
        hub_cli,
        *("users", "add", ADMIN, "--role", "admin", "--password-stdin", "--config", str(config)),
        stdin=PASSWORD + "\n",
    )
    options = SimulatorOptions(machines=2, seed=seed, modbus_port=0, opcua_port=0, control_port=0)
    async with Simulator(options) as sim:
        assert sim.control is not None
        machines = [f"{site}/{LINE}/{ep['machine']}" for ep in sim.endpoints()]
        hub = Proc(
            [str(BIN / "millstream-hub"), "serve", "--config", str(config)], tmp_path / "hub.log"
        )
        procs.append(hub)
        agent_config = write_agent_config(tmp_path, broker, site, sim, login=agent_login)
        agent_started = time.time()
        agent = Proc([str(BIN / "edge-agent"), "run", str(agent_config)], tmp_path / "agent.log")
        procs.append(agent)
        await wait_ready(base, hub)
        yield Plant(base, site, machines, sim, hub, agent, agent_started, config)


async def inject_high_pressure(sim: Simulator) -> None:
    """The press's pressure reads 250 + 125 bar for 30 s (normal stays below ~210 bar)."""
    assert sim.control is not None
    answer = await request(
        "127.0.0.1",
        sim.control.port,
        {
            "cmd": "inject",
            "machine": "press-01",
            "tag": "pressure",
            "kind": "out_of_range",
            "duration": 30,
        },
    )
    assert answer["ok"], answer


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[BrowserContext]:
    """Debian's Chromium with a fresh profile (never a downloaded browser)."""
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            await context.close()


def watch(page: Page, base: str) -> Callable[[], list[str]]:
    """Collect page errors and any request leaving the hub's origin (no CDN, no internet)."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def request(req: Request) -> None:
        if not req.url.startswith((base, "ws://127.0.0.1", "data:")):
            problems.append(f"request outside the hub: {req.url}")

    page.on("request", request)
    return lambda: problems
