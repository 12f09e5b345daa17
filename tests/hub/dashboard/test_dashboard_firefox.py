"""The dashboard in a real Firefox (Debian's firefox-esr over WebDriver BiDi) on the real pipeline.

The same pipeline and checks as test_dashboard_browser.py (Chromium), started by dashtest.py:
simulator (in-process, Modbus) → `edge-agent run` → Mosquitto → `millstream-hub
serve` → the dashboard at `/`. A wrong password is refused and gives no access; after logging in
the fleet view renders every machine online; a machine's page shows the value an anomaly injected
into the simulator produces within 2 s; stopping the agent turns its machines offline within
30 s. Screenshots of the fleet and machine views go to `$ARTIFACTS_DIR` (default: the test's
tmp dir).

Firefox is never downloaded: tests/harness/firefox.py drives `/usr/bin/firefox-esr`
(scripts/services install). A missing Firefox fails the test, it is not skipped.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dashtest import ADMIN, LINE, PASSWORD, Proc, artifacts, inject_high_pressure, running_plant

from tests.harness import Mosquitto
from tests.harness.firefox import Firefox, firefox_path

pytestmark = pytest.mark.asyncio(loop_scope="session")


def row(key: str, state: str) -> str:
    """A JS expression: the fleet row of `key` shows a `state` badge."""
    return f'document.querySelector(\'tr[data-machine="{key}"] .badge[data-state="{state}"]\')'


# Each machine row as Firefox laid it out: box, badge text and the badge's computed colours
# (white on a colour comes from the dashboard's stylesheet, so it proves the CSS applied).
ROWS = """[...document.querySelectorAll('tr[data-machine]')].map(tr => {
    const r = tr.getBoundingClientRect();
    const b = tr.querySelector('.badge');
    const s = b && getComputedStyle(b);
    return {key: tr.dataset.machine, w: r.width, h: r.height, right: r.right,
            badge: b && b.textContent.trim(), fg: s && s.color, bg: s && s.backgroundColor};
})"""


async def test_engineer_in_firefox_sees_fleet_live_values_and_an_agent_going_offline(
    mosquitto_factory: Callable[..., Mosquitto],
    pg_dsn: str,
    tmp_path: Path,
    procs: list[Proc],
) -> None:
    firefox_path()  # fails (never skips) with the fix when Firefox is not installed
    broker = mosquitto_factory(persistence=False)  # no retained statuses of other tests
    shots = artifacts(tmp_path)
    async with running_plant(broker, pg_dsn, tmp_path, procs, site_prefix="f", seed=5) as plant:
        base, site, machines, agent = plant.base, plant.site, plant.machines, plant.agent
        async with Firefox(tmp_path / "firefox-profile") as ff:
            # Wrong password: the error shows, and the fleet stays behind the login page.
            await ff.goto(base + "/")
            await ff.wait_url(base + "/login")
            await ff.type("#username", ADMIN)
            await ff.type("#password", "not the password")
            await ff.click("button[type=submit]")
            error = await ff.wait_for(
                "!document.querySelector('#login-error').hidden"
                " && document.querySelector('#login-error').innerText",
                what="the login error",
            )
            assert "Wrong user name or password" in error
            await ff.goto(base + "/fleet")
            await ff.wait_url(base + "/login")
            assert await ff.evaluate("document.querySelector('#machines')") is None
            assert await ff.evaluate("document.cookie") == ""

            # Log in: the fleet view shows every machine online, laid out and styled.
            await ff.type("#username", ADMIN)
            await ff.type("#password", PASSWORD)
            await ff.click("button[type=submit]")
            await ff.wait_url(base + "/")
            for key in machines:
                await ff.wait_for(row(key, "online"), within=90, what=f"{key} online")
            tile = await ff.evaluate(
                "document.querySelector('#machines-online .tile-value').innerText"
            )
            assert tile == f"{len(machines)} / {len(machines)}", agent.text()
            await ff.wait_for(
                f'document.querySelector(\'tr[data-agent="pc-{site}"] '
                '.badge[data-state="online"]\')',
                what="the agent online",
            )
            rows = await ff.evaluate(ROWS)
            assert sorted(r["key"] for r in rows) == sorted(machines), rows
            viewport = await ff.evaluate("[window.innerWidth, document.body.scrollHeight]")
            for r in rows:
                assert r["badge"] == "online", r
                assert r["h"] > 10, r
                assert r["w"] > 300, r
                assert r["right"] <= viewport[0], r
                assert r["fg"] == "rgb(255, 255, 255)", r
                assert r["bg"] != "rgba(0, 0, 0, 0)", r
            size = await ff.screenshot(shots / "firefox-fleet.png")
            assert size[0] == viewport[0], (size, viewport)
            assert size[1] >= min(viewport[1], 200), (size, viewport)

            # A machine: live values; an anomaly injected into the simulator shows within 2 s.
            key = f"{site}/{LINE}/press-01"
            await ff.click(f'tr[data-machine="{key}"] a.machine-link')
            await ff.wait_url(f"{base}/machines/{key}")
            await ff.wait_for("document.querySelector('#live-state.live-live')", what="live")
            value = "document.querySelector('tr[data-tag=\"pressure\"] td.value')?.dataset.value"
            before = float(await ff.wait_for(value, what="a live pressure value"))
            # Normal pressure stays below ~210 bar; out_of_range serves 250 + 125.
            assert before < 300, before
            await ff.wait_for(
                "document.querySelector('[data-chart=\"pressure\"] canvas')", what="the chart"
            )
            await inject_high_pressure(plant.sim)
            injected = time.monotonic()
            after = await ff.wait_for(
                f"Number({value}) > 300 && Number({value})", within=2, what="pressure > 300"
            )
            assert after > 300, (before, after, time.monotonic() - injected)
            await ff.screenshot(shots / "firefox-machine.png")

            # Stop the agent: its machines turn offline within 30 s in the fleet view.
            await ff.click("nav a[href='/']")
            await ff.wait_url(base + "/")
            await ff.wait_for(row(machines[0], "online"), what="the fleet again")
            agent.proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(agent.proc.wait, 30) == 0, agent.text()
            for key in machines:
                await ff.wait_for(row(key, "offline"), within=30, what=f"{key} offline")
            await ff.wait_for(
                f'document.querySelector(\'tr[data-agent="pc-{site}"] '
                '.badge[data-state="offline"]\')',
                what="the agent offline",
            )
            await ff.screenshot(shots / "firefox-fleet-offline.png")

            assert ff.errors == [], ff.errors
            outside = [
                u for u in ff.requests if not u.startswith((base, "ws://127.0.0.1:", "data:"))
            ]
            assert outside == [], json.dumps(outside)
