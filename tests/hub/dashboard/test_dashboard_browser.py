"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) on the real pipeline.

simulator (in-process, Modbus) → `edge-agent run` (subprocess) → Mosquitto → `millstream-hub
serve` (subprocess, PostgreSQL) → the dashboard the hub serves at `/`. One scenario, as an
engineer meets it: a wrong password is refused; after logging in the fleet view shows every
machine online; a machine's page shows a value the simulator changes (an injected anomaly) within
2 s; stopping the agent turns its machines offline within 30 s. Screenshots of the fleet and
machine views are written to `$ARTIFACTS_DIR` (default: the test's tmp dir); `docs/img/` holds
the committed ones.

Chromium is never downloaded: the test drives `/usr/bin/chromium` (scripts/services install).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion
from playwright.async_api import BrowserContext, Page, async_playwright

import wire
from edge_agent.simulators import Simulator, SimulatorOptions, request
from tests.harness import Mosquitto, free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

BIN = Path(sys.executable).parent
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


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in reversed(started):
        p.close()


def hub_cli(*args: str, stdin: str | None = None) -> None:
    done = subprocess.run(
        [str(BIN / "millstream-hub"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def write_hub_config(tmp_path: Path, broker: Mosquitto, dsn: str, port: int) -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(
        f"mqtt:\n  url: '{broker.url}'\n  client_id: hub-{uuid.uuid4().hex[:8]}\n"
        f"storage: '{dsn}'\n"
        f"http: {{host: 127.0.0.1, port: {port}}}\n"
        "flush_ms: 20\n"
        f"jwt_secret: {uuid.uuid4().hex}{uuid.uuid4().hex}\n"
    )
    return path


def write_agent_config(tmp_path: Path, broker: Mosquitto, site: str, sim: Simulator) -> Path:
    profiles = {"press": "sim-hydraulic-press", "conveyor": "sim-conveyor"}
    lines = [
        f"agent: {{id: pc-{site}, site: {site}, line: {LINE}}}",
        f"mqtt: {{url: '{broker.url}', status_interval: 2s, receipt_timeout: 10s}}",
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


def artifacts(tmp_path: Path) -> Path:
    out = Path(os.environ.get("ARTIFACTS_DIR") or tmp_path / "artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


def watch(page: Page, base: str) -> Callable[[], list[str]]:
    """Collect page errors and any request leaving the hub's origin (no CDN, no internet)."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "request",
        lambda req: (
            None
            if req.url.startswith((base, "ws://127.0.0.1", "data:"))
            else problems.append(f"request outside the hub: {req.url}")
        ),
    )
    return lambda: problems


async def test_engineer_sees_fleet_live_values_and_an_agent_going_offline(
    mosquitto_factory: Callable[..., Mosquitto],
    pg_dsn: str,
    tmp_path: Path,
    procs: list[Proc],
) -> None:
    # A private broker: retained statuses of other tests must not show up in this fleet.
    broker = mosquitto_factory(persistence=False)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    site = f"s{uuid.uuid4().hex[:6]}"
    shots = artifacts(tmp_path)
    config = write_hub_config(tmp_path, broker, pg_dsn, port)
    await asyncio.to_thread(hub_cli, "migrate", "--config", str(config))
    await asyncio.to_thread(
        hub_cli,
        "users",
        "add",
        ADMIN,
        "--role",
        "admin",
        "--password-stdin",
        "--config",
        str(config),
        stdin=PASSWORD + "\n",
    )
    options = SimulatorOptions(machines=2, seed=3, modbus_port=0, opcua_port=0, control_port=0)
    async with Simulator(options) as sim:
        assert sim.control is not None
        machines = [f"{site}/{LINE}/{ep['machine']}" for ep in sim.endpoints()]
        hub = Proc(
            [str(BIN / "millstream-hub"), "serve", "--config", str(config)], tmp_path / "hub.log"
        )
        procs.append(hub)
        agent_config = write_agent_config(tmp_path, broker, site, sim)
        started = time.time()
        agent = Proc([str(BIN / "edge-agent"), "run", str(agent_config)], tmp_path / "agent.log")
        procs.append(agent)
        await wait_ready(base, hub)

        async with chromium(tmp_path / "chromium-profile") as browser:
            page = await browser.new_page()
            problems = watch(page, base)

            # Wrong password: an error, and no way past the login page.
            await page.goto(base + "/")
            await page.wait_for_url(base + "/login")
            await page.fill("#username", ADMIN)
            await page.fill("#password", "not the password")
            await page.click("button[type=submit]")
            error = page.locator("#login-error")
            await error.wait_for(state="visible", timeout=10_000)
            assert "Wrong user name or password" in await error.inner_text()
            await page.goto(base + "/fleet")
            await page.wait_for_url(base + "/login")
            assert await page.locator("#machines").count() == 0

            # Log in: the fleet view shows every machine online.
            await page.fill("#username", ADMIN)
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(base + "/")
            for key in machines:
                await page.locator(
                    f'tr[data-machine="{key}"] .badge[data-state="online"]'
                ).wait_for(timeout=90_000)
            tile = page.locator("#machines-online .tile-value")
            assert await tile.inner_text() == f"{len(machines)} / {len(machines)}", agent.text()
            await page.locator(f'tr[data-agent="pc-{site}"] .badge[data-state="online"]').wait_for()
            await page.screenshot(path=str(shots / "fleet.png"), full_page=True)

            # A machine: live values; an anomaly injected into the simulator shows within 2 s.
            await page.click(f'tr[data-machine="{site}/{LINE}/press-01"] a.machine-link')
            await page.wait_for_url(f"{base}/machines/{site}/{LINE}/press-01")
            await page.locator("#live-state.live-live").wait_for(timeout=10_000)
            pressure = page.locator('tr[data-tag="pressure"] td.value')
            await pressure.wait_for(timeout=10_000)
            await page.locator('[data-chart="pressure"] canvas').first.wait_for(timeout=10_000)
            # Units come from the press's profile, through the agent's retained meta message.
            unit = page.locator('tr[data-tag="pressure"] td.unit')
            assert await unit.inner_text() == "bar"
            title = page.locator('[data-chart="pressure"] .chart-title')
            assert "(bar)" in await title.inner_text()
            await asyncio.sleep(4)  # a few seconds of live chart before the anomaly
            # Normal pressure stays below ~210 bar; out_of_range serves 250 + 125.
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
            await page.wait_for_function(
                "() => Number(document.querySelector("
                "'tr[data-tag=\"pressure\"] td.value')?.dataset.value) > 300",
                timeout=2_000,
            )
            # Quality: a device publishing straight to MQTT marks readings uncertain and bad.
            t = int(time.time() * 1000)
            marked = [
                wire.Reading(tag="probe_temp", ts=t - 3000 + 500 * i, v=40.0 + i, q=q)
                for i, q in enumerate(["good", "uncertain", "good", "good", "good", "bad"])
            ]
            await asyncio.to_thread(
                publish_once,
                broker,
                f"ms/v1/{site}/{LINE}/press-01/telemetry",
                wire.encode_telemetry("probe-1", 1, marked),
            )
            probe = page.locator('tr[data-tag="probe_temp"]')
            await probe.locator(".badge", has_text="bad").wait_for(timeout=5_000)
            assert await probe.locator("td.value.q-bad").inner_text() == "45"
            await page.locator('[data-chart="probe_temp"] canvas').first.wait_for()
            await asyncio.sleep(2)  # let the spike draw

            # Zoom: drag across the span that has data; every chart shows it from the API.
            over = page.locator('[data-chart="pressure"] .u-over')
            await over.scroll_into_view_if_needed()
            box = await over.bounding_box()
            assert box is not None
            covered = (time.time() - started) / (15 * 60)  # the 15 min view's share with data
            y = box["y"] + box["height"] / 2
            await page.mouse.move(box["x"] + box["width"] * max(0.0, 1 - covered * 1.1), y)
            await page.mouse.down()
            await page.mouse.move(box["x"] + box["width"] + 8, y, steps=10)  # up to "now"
            await page.mouse.up()
            await page.get_by_role("button", name="Reset zoom").wait_for(timeout=5_000)
            await asyncio.sleep(1.5)  # history of the zoomed span loads
            await page.evaluate("window.scrollTo(0, 0)")
            await page.screenshot(path=str(shots / "machine.png"), full_page=True)

            # History over a longer range: every chart asks the API for at most its width.
            async with page.expect_response(
                lambda r: "/readings?" in r.url and "max_points=" in r.url and r.ok
            ) as history:
                await page.click('button[data-range="7 d"]')
            answer = await (await history.value).json()
            assert answer["to_ms"] - answer["from_ms"] > 7 * 86_400_000 - 5_000
            assert await page.get_by_role("button", name="Reset zoom").is_hidden()

            # Completeness per minute, and the dead letter a broken publisher leaves.
            await asyncio.to_thread(
                publish_once, broker, f"ms/v1/{site}/{LINE}/press-01/telemetry", b"{not json"
            )
            await page.click("nav >> text=Completeness")
            for key in machines:
                row = page.locator(f'tr[data-machine="{key}"]')
                await row.locator(".cell:is(.c-full, .c-part, .c-live)").first.wait_for()
                # The minutes before the machine's first reading are not gaps.
                assert await row.locator(".cell.c-gap").count() == 0
            await page.screenshot(path=str(shots / "completeness.png"), full_page=True)
            await page.click("nav >> text=Dead letters")
            await page.locator("#dead-letters code", has_text="bad_json").wait_for(timeout=10_000)
            await page.screenshot(path=str(shots / "dead-letters.png"), full_page=True)

            # A shop-floor tablet: the fleet view fits its width.
            await page.click("nav >> text=Fleet")
            await page.set_viewport_size({"width": 768, "height": 1024})
            await page.locator(f'tr[data-machine="{machines[0]}"]').wait_for()
            await page.screenshot(path=str(shots / "fleet-tablet.png"), full_page=True)
            width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], width

            # Stop the agent: its machines turn offline within 30 s.
            agent.proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(agent.proc.wait, 30) == 0, agent.text()
            for key in machines:
                await page.locator(
                    f'tr[data-machine="{key}"] .badge[data-state="offline"]'
                ).wait_for(timeout=30_000)
            await page.locator(
                f'tr[data-agent="pc-{site}"] .badge[data-state="offline"]'
            ).wait_for()
            await page.screenshot(path=str(shots / "fleet-offline.png"), full_page=True)
            assert problems() == []
