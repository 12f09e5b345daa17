"""The Identities page and the watch view in a real browser (Debian's Chromium, Playwright) against
a real Mosquitto with its dynamic security plugin and `millstream-hub serve` (SQLite).

As an admin: add a device on the Identities page and see its password once, with the warning to
copy it now; connect a paho client with that password and publish a good and a bad telemetry
message: the watch view shows the first accepted (readings, src, seq, all stored) and the second
refused with its reason and field; adding the same name again is refused in words; disabling it
cuts the device off at the broker; removing it asks first. A viewer sees no Identities menu and
is told the page is for admins. Screenshots `identities.png` and `identity-watch.png` go to
`$ARTIFACTS_DIR`.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from dashtest import PASSWORD, artifacts, chromium, hub_cli, watch
from playwright.async_api import Page

from tests.harness.hubproc import HubProcess, wait_ready
from tests.hub.devices.test_broker_identities import Device, dynsec_hub

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]

TOPIC = "ms/v1/plant-a/line-3/press-01/telemetry"


def _batch(src: str, seq: int, readings: list[dict[str, Any]]) -> bytes:
    return json.dumps({"v": 1, "src": src, "seq": seq, "readings": readings}).encode()


async def _login(page: Page, base: str, user: str) -> None:
    await page.goto(base + "/login")
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    # Logged in once the menu shows (the page may return to where the last session left).
    await page.locator("nav >> text=Fleet").wait_for(timeout=15_000)


async def test_admin_adds_watches_and_disables_a_device(
    mosquitto_factory: Any, tmp_path: Path
) -> None:
    broker, config, _db, port = dynsec_hub(mosquitto_factory, tmp_path)
    for user, role in (("boss", "admin"), ("looker", "viewer")):
        await asyncio.to_thread(
            hub_cli,
            *("users", "add", user, "--role", role, "--password-stdin", "--config", str(config)),
            stdin=PASSWORD + "\n",
        )
    shots = artifacts(tmp_path)
    base = f"http://127.0.0.1:{port}"
    hub = HubProcess(config, tmp_path / "hub.log")
    device: Device | None = None
    try:
        await wait_ready(port, hub)
        async with chromium(tmp_path / "chromium-profile") as browser:
            page = await browser.new_page()
            problems = watch(page, base)

            # A viewer: no menu entry, and the page itself says it is for admins.
            await _login(page, base, "looker")
            assert await page.locator("nav >> text=Identities").count() == 0
            await page.goto(base + "/identities")
            await page.get_by_text("Broker identities are for admins.").wait_for(timeout=10_000)
            assert await page.locator("#identity-form").count() == 0
            await page.click("text=Log out")

            # The admin adds a device; its password is shown once, with the warning.
            await _login(page, base, "boss")
            await page.click("nav >> text=Identities")
            await page.locator("#identities-empty").wait_for(timeout=10_000)
            await page.select_option("#identity-kind", "device")
            await page.fill("#identity-name", "press-gw")
            await page.fill("#identity-site", "plant-a")
            await page.fill("#identity-line", "line-3")
            await page.fill("#identity-machines", "press-01")
            await page.click("#identity-add")
            await page.locator("#identity-secret").wait_for(state="visible", timeout=15_000)
            password = (await page.inner_text("#identity-password")).strip()
            assert len(password) >= 24, password
            once = await page.inner_text("#identity-once")
            assert "Copy it now: it is not shown again" in once, once
            row = page.locator('tr[data-identity="press-gw"]')
            await row.wait_for(timeout=10_000)
            text = await row.inner_text()
            assert all(part in text for part in ("device", "plant-a / line-3", "press-01")), text
            assert await row.get_attribute("data-disabled") == "false"
            assert "enabled" in await row.locator("td.state").inner_text()
            await page.screenshot(path=str(shots / "identities.png"), full_page=True)

            # The same name again: refused in words (409), nothing changes.
            await page.fill("#identity-name", "press-gw")
            await page.fill("#identity-machines", "press-01")
            await page.click("#identity-add")
            refusal = page.locator("#identity-form-problem")
            await refusal.wait_for(state="visible", timeout=10_000)
            assert "exists already" in await refusal.inner_text()

            # Once dismissed, the password is nowhere on the page, not even after a reload.
            await page.click("#identity-secret-done")
            assert await page.locator("#identity-secret").is_hidden()
            await page.reload()
            await row.wait_for(timeout=10_000)
            assert password not in await page.content()

            # The watch view: a good and a bad message from the device, judged by the hub.
            await row.locator("a.watch").click()
            await page.wait_for_url(base + "/identities/press-gw/watch")
            await page.locator('#watch-state[data-state="watching"]').wait_for(timeout=20_000)
            assert TOPIC in await page.inner_text("#watch-topics")
            device = Device(broker.port, "press-gw", password)
            assert await asyncio.to_thread(device.connected.wait, 10), device.connack
            now = int(time.time() * 1000)
            good = [{"tag": "temp", "ts": now - i, "v": 20.0 + i} for i in range(3)]
            assert await asyncio.to_thread(device.publish, TOPIC, _batch("press-gw", 1, good)) == 0
            accepted = page.locator('tr.verdict[data-accepted="true"]')
            await accepted.wait_for(timeout=15_000)
            said = await accepted.inner_text()
            assert "3 readings, src press-gw, seq 1" in said, said
            assert await accepted.locator("td.stored").inner_text() == "all 3 stored"
            bad = [{"tag": "temp", "ts": now, "v": 1.0, "q": "so-so"}]
            assert await asyncio.to_thread(device.publish, TOPIC, _batch("press-gw", 2, bad)) == 0
            refused = page.locator('tr.verdict[data-accepted="false"]')
            await refused.wait_for(timeout=15_000)
            assert await refused.get_attribute("data-reason") == "bad_quality"
            assert await refused.locator("td.field").inner_text() == "readings[0].q"
            assert "refused" in await refused.inner_text()
            # Newest first: the refusal above the accepted batch.
            assert await page.locator("tr.verdict").first.get_attribute("data-accepted") == "false"
            await page.screenshot(path=str(shots / "identity-watch.png"), full_page=True)

            # Disable from the list: the broker cuts the device off at once.
            await page.click("text=← Broker identities")
            await row.locator("button.toggle", has_text="Disable").click()
            await page.locator('tr[data-identity="press-gw"][data-disabled="true"]').wait_for(
                timeout=15_000
            )
            assert "disabled" in await row.locator("td.state").inner_text()
            assert await asyncio.to_thread(device.dropped.wait, 5), "not cut off by the broker"

            # Remove asks first; declined, it stays; accepted, it goes.
            page.once("dialog", lambda d: asyncio.ensure_future(d.dismiss()))
            await row.locator("button.remove").click()
            await asyncio.sleep(0.5)
            assert await row.count() == 1
            page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
            await row.locator("button.remove").click()
            await page.locator("#identities-empty").wait_for(timeout=15_000)
            assert problems() == []
        assert password not in hub.log_text()
    finally:
        if device is not None:
            device.close()
        hub.close()
