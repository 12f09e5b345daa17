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
import json
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from dashtest import (
    ADMIN,
    LINE,
    PASSWORD,
    Proc,
    artifacts,
    chromium,
    inject_high_pressure,
    publish_once,
    running_plant,
    watch,
)
from playwright.async_api import Page, WebSocketRoute

import wire
from tests.harness import Mosquitto

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Sockets:
    """Every /ws connection the page opens: its URL and first message."""

    urls: list[str] = field(default_factory=list)
    first_messages: list[dict[str, Any]] = field(default_factory=list)
    expire_next: bool = False  # hand the hub an expired token in the next socket's auth


async def route_sockets(page: Page) -> Sockets:
    """Pass /ws through to the hub, recording each socket; `expire_next` spoils one auth."""
    sockets = Sockets()

    def route(ws: WebSocketRoute) -> None:
        sockets.urls.append(ws.url)
        server = ws.connect_to_server()
        first = True

        def from_page(message: str | bytes) -> None:
            nonlocal first
            if first:
                first = False
                doc = json.loads(message)
                sockets.first_messages.append(dict(doc))
                if sockets.expire_next and doc.get("type") == "auth":
                    sockets.expire_next = False
                    doc["token"] = "eyJ.expired.token"
                    message = json.dumps(doc)
            server.send(message)

        ws.on_message(from_page)

    await page.route_web_socket(re.compile(r"/ws(\?.*)?$"), route)
    return sockets


async def stored_events(dsn: str, site: str, count: int) -> None:
    """Until `count` machine events of `site` are in PostgreSQL (30 s at most)."""
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(300):
            found = await conn.fetchval("SELECT count(*) FROM machine_events WHERE site = $1", site)
            if found >= count:
                return
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError(f"{count} events of {site} not stored within 30 s")


async def agents_table_fits(page: Page, width: int) -> None:
    """At `width` px the page has no horizontal overflow and the agents table fits its card."""
    await page.set_viewport_size({"width": width, "height": 1024})
    await page.locator("#agents table").wait_for()
    doc, view, table, card = await page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth,"
        " document.querySelector('#agents table').scrollWidth,"
        " document.querySelector('#agents .scroll').clientWidth]"
    )
    assert doc <= view, (width, doc, view)
    assert table <= card, f"at {width} px the agents table is {table} px in a {card} px card"


async def test_engineer_sees_fleet_live_values_and_an_agent_going_offline(
    mosquitto_factory: Callable[..., Mosquitto],
    pg_dsn: str,
    tmp_path: Path,
    procs: list[Proc],
) -> None:
    # A private broker: retained statuses of other tests must not show up in this fleet.
    broker = mosquitto_factory(persistence=False)
    shots = artifacts(tmp_path)
    # One alert rule the simulated press trips at once (its oil runs at ~35 °C), one that
    # never fires: the fleet card and the Alerts page show the first, an operator acknowledges.
    rules = (
        "alerts:\n  rules:\n"
        "    - {name: warm-oil, kind: threshold, match: {tag: oil_temp}, above: 20,"
        " severity: critical}\n"
        "    - {name: boiling-oil, kind: threshold, match: {tag: oil_temp}, above: 500}\n"
    )
    async with running_plant(
        broker, pg_dsn, tmp_path, procs, site_prefix="s", seed=3, hub_extra=rules
    ) as plant:
        base, site, machines, agent = plant.base, plant.site, plant.machines, plant.agent
        async with chromium(tmp_path / "chromium-profile") as browser:
            page = await browser.new_page()
            problems = watch(page, base)
            sockets = await route_sockets(page)
            refreshes: list[str] = []
            page.on(
                "request",
                lambda req: refreshes.append(req.url) if "/auth/refresh" in req.url else None,
            )

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
            # No configuration was pushed from the hub: the agent runs its own file.
            config = page.locator(f'tr[data-agent="pc-{site}"] td.config')
            assert await config.inner_text() == "own file"
            await page.screenshot(path=str(shots / "fleet.png"), full_page=True)

            # A machine: live values; an anomaly injected into the simulator shows within 2 s.
            # Its first socket's token has expired: the hub closes it with 4401, the page
            # refreshes its tokens and reconnects. No socket carries a token in its URL.
            sockets.expire_next = True
            async with page.expect_response(
                lambda r: "/readings?" in r.url and "max_points=" in r.url
            ) as first_history:
                await page.click(f'tr[data-machine="{site}/{LINE}/press-01"] a.machine-link')
            await page.wait_for_url(f"{base}/machines/{site}/{LINE}/press-01")
            await page.locator("#live-state.live-live").wait_for(timeout=10_000)
            assert len(sockets.urls) >= 2, sockets
            assert refreshes, "a 4401 close must make the page refresh its tokens"
            assert all("token" not in url for url in sockets.urls), sockets.urls
            assert all(m["type"] == "auth" for m in sockets.first_messages), sockets
            # The 15-minute view shows raw readings (a 200 ms press stroke), not minute buckets.
            history = await first_history.value
            assert "max_points=20000" in history.url, history.url
            assert (await history.json())["resolution"] == "raw"
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
            await inject_high_pressure(plant.sim)
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
            # the 15 min view's share with data
            covered = (time.time() - plant.agent_started) / (15 * 60)
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

            # A shop-floor tablet: the fleet view, agents table included, fits its width.
            await page.click("nav >> text=Fleet")
            await page.locator(f'tr[data-machine="{machines[0]}"]').wait_for()
            await agents_table_fits(page, 800)
            await agents_table_fits(page, 768)
            await page.screenshot(path=str(shots / "fleet-tablet.png"), full_page=True)
            await page.set_viewport_size({"width": 1280, "height": 900})

            # The press's warm oil is an active alert on the fleet card and the Alerts page;
            # acknowledged there with a comment, it says who did and why.
            card = page.locator("#alerts-list li", has_text="warm-oil")
            await card.wait_for(timeout=20_000)
            assert "critical" in await card.inner_text()
            assert await page.locator("#alerts-list li", has_text="boiling-oil").count() == 0
            # The press itself raises an alarm (wire events, docs/events.md): shown on the
            # Alerts page beside Millstream's own, with its severity, source and message.
            # An OPC-UA condition among them gets an Acknowledge button (operators, admins).
            raised = json.dumps({"v": 1, "src": "press-gw", "seq": 1, "events": [{
                "id": "guard-open:1", "ts": int(time.time() * 1000), "source": "guard_open",
                "type": "alarm", "severity": 700, "message": "Guard door open", "state": "active",
            }, {
                "id": "c7f3a90b12e4", "ts": int(time.time() * 1000), "source": "Press.Hydraulics",
                "type": "OffNormalAlarmType", "severity": 500, "message": "Oil level low",
                "state": "active", "fields": {"condition": "ns=2;i=7", "active": True,
                                              "acked": False},
            }]}).encode()  # fmt: skip
            await asyncio.to_thread(
                publish_once, broker, f"ms/v1/{site}/{LINE}/press-01/events", raised
            )
            # Stored before the page asks: the page polls events every 15 s, so a first load
            # that raced the hub's commit would wait for the next poll.
            await stored_events(pg_dsn, site, 2)
            await page.click("nav >> text=Alerts")
            event = page.locator('#machine-events tr[data-event="guard-open:1"]')
            await event.wait_for(timeout=10_000)
            shown = await event.inner_text()
            assert "critical 700" in shown, shown
            assert "guard_open" in shown, shown
            assert "Guard door open" in shown, shown
            assert await event.locator("button.ack-event").count() == 0  # not a condition
            # Acknowledged from the page: the command reaches the press's agent, whose answer
            # is shown (the simulated press speaks Modbus, which has no conditions to ack).
            condition = page.locator('#machine-events tr[data-event="c7f3a90b12e4"]')
            page.once("dialog", lambda d: asyncio.ensure_future(d.accept("topping up")))
            await condition.locator("button.ack-event").click()
            answered = page.locator('#event-ack-result[data-status="refused"]')
            await answered.wait_for(timeout=15_000)
            said = await answered.inner_text()
            assert "press-01: its protocol cannot acknowledge yet" in said, said
            row = page.locator('#alerts-table tr[data-state="active"]', has_text="warm-oil")
            await row.wait_for(timeout=10_000)
            page.once("dialog", lambda d: asyncio.ensure_future(d.accept("checking the cooler")))
            await row.locator("button.ack").click()
            acked = page.locator('#alerts-table tr[data-state="acknowledged"]', has_text="warm-oil")
            await acked.wait_for(timeout=10_000)
            assert "checking the cooler" in await acked.inner_text()
            await page.screenshot(path=str(shots / "alerts.png"), full_page=True)
            # The press's oil chart shades the alert's span and draws its profile's limits.
            press = next(m for m in machines if m.endswith("/press-01"))
            await page.locator(f'a[href="/machines/{press}"]').first.click()
            oil = page.locator('[data-chart="oil_temp"]')
            await page.wait_for_function(
                "() => Number(document.querySelector('[data-chart=\"oil_temp\"]')"
                "?.dataset.alerts ?? 0) >= 1",
                timeout=15_000,
            )
            assert await oil.get_attribute("data-limits") == "10,80"
            # The config's threshold rules on oil_temp are drawn at their limits too.
            assert await oil.get_attribute("data-thresholds") == "warm-oil:20,boiling-oil:500"
            # The press's two stored events are drawn on its charts as vertical markers.
            await page.wait_for_function(
                "() => document.querySelector('[data-chart=\"oil_temp\"]')?.dataset.events === '2'",
                timeout=10_000,
            )

            # A write: the conveyor's speed setpoint (writable in its profile) from the
            # machine page, confirmed against the value now and its limits, answered by the
            # agent with the value read back; the simulated drive takes it; the audit log
            # (admins) keeps it.
            conveyor = next(m for m in machines if m.endswith("/conveyor-01"))
            await page.goto(f"{base}/machines/{conveyor}")
            write = page.locator('tr[data-tag="speed_setpoint"] button.write-tag')
            await write.wait_for(timeout=15_000)
            assert await page.locator('tr[data-tag="belt_speed"] button.write-tag').count() == 0
            await write.click()
            await page.fill("#write-value", "3")
            await page.click("#write-next")
            assert "above the highest allowed, 2" in await page.inner_text("#write-problem")
            await page.fill("#write-value", "0.8")
            await page.click("#write-next")
            confirm = await page.inner_text("#write-confirm")
            assert "from 1.2 to 0.8 m/s" in confirm, confirm
            assert "Allowed: 0 – 2 m/s" in confirm, confirm
            await page.click("#write-send")
            await page.locator('#write-result[data-status="done"]').wait_for(timeout=15_000)
            assert "Read back: 0.8 m/s (was 1.2)" in await page.inner_text("#write-result")
            await page.screenshot(path=str(shots / "write.png"))
            await page.click("#write-close")
            assert plant.sim.plant.machine("conveyor-01").setpoint == pytest.approx(0.8)
            await page.click("nav >> text=Commands")
            logged = page.locator('#commands-table tr[data-status="done"]')
            await logged.wait_for(timeout=10_000)
            text = await logged.inner_text()
            assert all(part in text for part in ("speed_setpoint", ADMIN, "0.8")), text

            await page.click("nav >> text=Fleet")
            await page.locator(f'tr[data-machine="{machines[0]}"]').wait_for()

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
