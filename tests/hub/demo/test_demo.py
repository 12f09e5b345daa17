"""`millstream demo` as a newcomer runs it: one command, data on the dashboard, Ctrl-C, run again.

The command runs as a subprocess exactly as the README shows it (plus --data-dir/--port so tests
can run side by side). Within 30 s of the command readings of all five machine types are in the
hub's SQLite file; the dashboard, logged in with the printed credentials in Debian's headless
Chromium, shows every machine online and live values; SIGINT stops everything (exit 0, no child
left); a second run on the same folder prints the same login and stores more readings; when a
component dies the demo stops the rest and exits 1 naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
from playwright.async_api import BrowserContext, async_playwright

from tests.harness import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

MILLSTREAM = Path(sys.executable).parent / "millstream"
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
MACHINES = ["press-01", "conveyor-01", "oven-01", "compressor-01", "cnc-01"]
SITE, LINE = "demo-plant", "line-1"


@dataclass
class Demo:
    """A running `millstream demo`: its process, the lines it printed, the parsed banner."""

    proc: subprocess.Popen[str]
    started: float
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """Block until a printed line matches `pattern`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if found := re.search(pattern, line):
                return found
        pytest.fail(f"no line matching {pattern!r}; printed so far:\n" + "".join(self.seen))

    def output(self) -> str:
        """Everything printed (the rest is read until the pipe closes)."""
        while True:
            try:
                line = self.lines.get(timeout=10)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
        return "".join(self.seen)


def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line)
    lines.put(None)


@contextlib.contextmanager
def run_demo(data_dir: Path, port: int) -> Iterator[Demo]:
    """Start the demo as the README says; kill it (by PID) if the test left it running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MILLSTREAM_")}
    proc = subprocess.Popen(
        [str(MILLSTREAM), "demo", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    demo = Demo(proc, time.monotonic())
    pump = threading.Thread(target=_pump, args=(proc, demo.lines), daemon=True)
    pump.start()
    try:
        yield demo
    finally:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            proc.kill()
            proc.wait(10)
        pump.join(10)
        assert proc.stdout is not None
        proc.stdout.close()


def stored(db: Path) -> tuple[int, set[str]]:
    """Readings in the hub's SQLite file and the machines they came from."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        rows = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
        machines = {
            m
            for (m,) in conn.execute(
                "SELECT DISTINCT s.machine FROM series s JOIN readings r ON r.series_id = s.id"
            )
        }
    return int(rows), machines


def wait_stored(db: Path, deadline: float, more_than: int = 0) -> tuple[int, set[str]]:
    """Poll until every machine has readings and the count passed `more_than`."""
    rows, machines = 0, set[str]()
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error):
            rows, machines = stored(db)
            if rows > more_than and machines >= set(MACHINES):
                return rows, machines
        time.sleep(0.5)
    pytest.fail(f"after the deadline: {rows} readings from {sorted(machines)}")


def stop(demo: Demo) -> str:
    """SIGINT (Ctrl-C), then: exit 0 within a few seconds and no child process left."""
    children = psutil.Process(demo.proc.pid).children(recursive=True)
    assert len(children) >= 3, children  # broker, hub and agent run as child processes
    demo.proc.send_signal(signal.SIGINT)
    code = demo.proc.wait(30)
    out = demo.output()
    assert code == 0, out
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == [], alive
    assert "stopped" in out
    return out


def artifacts(tmp_path: Path) -> Path:
    """Where screenshots go: `$ARTIFACTS_DIR`, else the test's tmp dir."""
    out = Path(os.environ.get("ARTIFACTS_DIR") or tmp_path / "artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


@asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[BrowserContext]:
    """Debian's Chromium with a fresh profile (never a downloaded browser)."""
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        try:
            yield context
        finally:
            await context.close()


async def test_demo_shows_live_data_stops_cleanly_and_continues(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    port = free_port()
    with run_demo(data, port) as demo:
        url = demo.wait_for(r"dashboard:\s+(http://\S+)", 120)[1]
        login = demo.wait_for(r"login:\s+(\S+) / (\S+)", 10)
        user, password = login[1], login[2]
        assert url == f"http://127.0.0.1:{port}"
        # The commands the banner prints work as typed, in the shell the demo was started from
        # (no venv activated here: PATH has no edge-agent of this install).
        control = ""
        for label in ("simulator", "agent"):
            command = demo.wait_for(rf"{label}:\s+(.+)$", 10)[1].strip()
            control = control or command.split("--control-port ")[-1]
            typed = await asyncio.create_subprocess_exec(
                "bash", "-c", command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            said, _ = await asyncio.wait_for(typed.communicate(), 60)
            assert typed.returncode == 0, f"{command}: {said.decode()}"
        # Readiness is probed with MQTT, so the broker never logs a half-open connection.
        assert "Failed to initialize" not in (data / "logs" / "broker.log").read_text()
        # The promise: data flows within 30 s of the command.
        rows, machines = wait_stored(data / "hub.db", demo.started + 30)
        assert machines >= set(MACHINES)

        async with chromium(tmp_path / "chromium-profile") as browser:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(url + "/")
            await page.wait_for_url(url + "/login")
            await page.fill("#username", user)
            await page.fill("#password", password)
            await page.click("button[type=submit]")
            await page.wait_for_url(url + "/")
            for machine in MACHINES:
                badge = f'tr[data-machine="{SITE}/{LINE}/{machine}"] .badge[data-state="online"]'
                await page.locator(badge).wait_for(timeout=30_000)
            # A machine's page streams live values over the WebSocket.
            await page.goto(f"{url}/machines/{SITE}/{LINE}/press-01")
            await page.locator("#live-state.live-live").wait_for(timeout=15_000)
            pressure = page.locator('tr[data-tag="pressure"] td.value')
            await pressure.wait_for(timeout=15_000)
            first = await pressure.get_attribute("data-value")
            await page.wait_for_function(
                "(v) => document.querySelector('tr[data-tag=\"pressure\"] td.value')"
                "?.dataset.value !== v",
                arg=first,
                timeout=15_000,
            )
            assert errors == []
            shot = artifacts(tmp_path) / "demo-machine.png"
            await page.screenshot(path=str(shot), full_page=True)

            # The demo raises alerts: an out-of-range pressure passes the press profile's limit
            # and the fleet page's card lists it (the rule and the machine).
            inject = await asyncio.create_subprocess_exec(
                str(MILLSTREAM.with_name("edge-agent")), "simulate", "inject",
                "--control-port", control, "--machine", "press-01", "--tag", "pressure",
                "--kind", "out_of_range", "--duration", "60",
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            said, _ = await asyncio.wait_for(inject.communicate(), 60)
            assert inject.returncode == 0, said.decode()
            await page.goto(url + "/")
            item = page.locator("#alerts-list li", has_text="press-01 · pressure — profile-limits")
            await item.wait_for(timeout=30_000)
            await page.screenshot(path=str(artifacts(tmp_path) / "demo-alert.png"), full_page=True)
            assert errors == []
        stop(demo)
    rows, _ = stored(data / "hub.db")

    # Second run on the same folder: same login, the agent and hub carry on where they were.
    with run_demo(data, port) as again:
        again.wait_for(r"dashboard:\s+(http://\S+)", 120)
        relogin = again.wait_for(r"login:\s+(\S+) / (\S+)", 10)
        # The restart banner counts what arrived since this start, not all time.
        assert any(
            re.search(r"data is flowing: \d+ new readings .*stored in all", line)
            for line in again.seen
        )
        assert (relogin[1], relogin[2]) == (user, password)
        wait_stored(data / "hub.db", time.monotonic() + 30, more_than=rows)
        async with httpx.AsyncClient(base_url=url) as client:
            answer = await client.post(
                "/api/v1/auth/login", json={"username": user, "password": password}
            )
            assert answer.status_code == 200, answer.text
            # A write on the demo's SQLite hub: the simulated conveyor takes its new speed,
            # the agent reads it back, the audit log keeps it.
            headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
            written = await client.post(
                f"/api/v1/machines/{SITE}/{LINE}/conveyor-01/tags/speed_setpoint/write",
                json={"value": 0.9},
                headers=headers,
                timeout=30,
            )
            assert written.status_code == 200, written.text
            assert (written.json()["status"], written.json()["read_back"]) == ("done", 0.9)
            audit = await client.get("/api/v1/commands", headers=headers)
            assert [c["id"] for c in audit.json()] == [written.json()["id"]]

        # A component that dies takes the demo down with a message, and nothing is left over.
        children = psutil.Process(again.proc.pid).children(recursive=True)
        hub = next(c for c in children if "serve" in c.cmdline())
        hub.kill()
        assert again.proc.wait(60) == 1
        assert "the hub exited unexpectedly" in again.output()
        _, alive = psutil.wait_procs(children, timeout=5)
        assert alive == [], alive
