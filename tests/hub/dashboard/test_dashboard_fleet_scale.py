"""The fleet view at 500 agents × 10 machines (5,000 machines), in Chromium against
`millstream-hub serve` on PostgreSQL: the fleet is seeded straight into the tables the fleet view
reads (agent and machine statuses, which agent polls which machine), as the ingest leaves them.
The page draws within a bound generous for a shared CI machine, keeps the DOM to the rows in
view (no 5,000 `<tr>`), finds a machine deep in the list by name, by line and by agent, folds a
site and a line, and still follows a machine's state as it changes (3 s polling)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from dashtest import (
    ADMIN,
    BIN,
    PASSWORD,
    Proc,
    artifacts,
    chromium,
    hub_cli,
    wait_ready,
    watch,
    write_hub_config,
)
from playwright.async_api import Page

from tests.harness import Mosquitto, free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

AGENTS, PER_AGENT = 500, 10
MAX_ROWS = 300
ROWS = "document.querySelectorAll('tr').length"
MACHINE_ROWS = "document.querySelectorAll('tr[data-machine]').length"


def where(a: int) -> tuple[str, str, str]:
    """Agent `a`'s site, line and id: 5 sites × 100 lines, one agent per line."""
    return f"site-{a // 100}", f"line-{a % 100:02d}", f"agent-{a:03d}"


async def seed(dsn: str, now: int) -> None:
    """500 agents, each polling 10 machines; agent-377 is offline (so are its machines)."""
    agents, machines, owners = [], [], []
    for a in range(AGENTS):
        site, line, agent = where(a)
        state = "offline" if a == 377 else "online"
        names = [f"m{a:03d}-{k}" for k in range(PER_AGENT)]
        payload = {"site": site, "line": line, "devices": names, "poll_errors": {}}
        agents.append((agent, state, now, "1.4.0", 0, 0, json.dumps(payload), now))
        for name in names:
            machines.append((site, line, name, "online", now, None, "{}", now))
            owners.append((site, line, name, agent, now))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO agents (agent_id, state, status_ts, version, buffer_depth, drops,"
            " payload, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            agents,
        )
        await conn.executemany(
            "INSERT INTO machines (site, line, machine, state, status_ts, detail, payload,"
            " last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            machines,
        )
        await conn.executemany(
            "INSERT INTO machine_agents (site, line, machine, agent_id, updated_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            owners,
        )
    finally:
        await conn.close()


async def api_figures(base: str) -> str:
    """What the fleet costs the API: the whole list in one answer vs page by page (printed)."""
    async with httpx.AsyncClient(base_url=base + "/api/v1", timeout=60) as client:
        login = await client.post("/auth/login", json={"username": ADMIN, "password": PASSWORD})
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        started = time.monotonic()
        whole = await client.get("/machines")
        whole_s = time.monotonic() - started
        started, pages, after = time.monotonic(), 0, None
        while True:
            r = await client.get(
                "/machines", params={"limit": 1000, **({"after": after} if after else {})}
            )
            pages += 1
            after = r.headers.get("x-next-cursor")
            if after is None:
                break
        paged_s = time.monotonic() - started
    return (
        f"GET /machines whole: {whole_s * 1000:.0f} ms, {len(whole.content) / 1e6:.2f} MB;"
        f" {pages} pages of 1000: {paged_s * 1000:.0f} ms"
    )


async def search(page: Page, text: str) -> None:
    await page.fill("#fleet-search", text)


async def test_fleet_of_5000_machines_stays_usable(
    mosquitto_factory: Callable[..., Mosquitto],
    pg_dsn: str,
    tmp_path: Path,
    procs: list[Proc],
) -> None:
    broker = mosquitto_factory(persistence=False)
    shots = artifacts(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = write_hub_config(tmp_path, broker, pg_dsn, port)
    await asyncio.to_thread(hub_cli, "migrate", "--config", str(config))
    await asyncio.to_thread(
        hub_cli,
        *("users", "add", ADMIN, "--role", "admin", "--password-stdin", "--config", str(config)),
        stdin=PASSWORD + "\n",
    )
    await seed(pg_dsn, int(time.time() * 1000))
    hub = Proc(
        [str(BIN / "millstream-hub"), "serve", "--config", str(config)], tmp_path / "hub.log"
    )
    procs.append(hub)
    await wait_ready(base, hub)

    async with chromium(tmp_path / "chromium-profile") as browser:
        page = await browser.new_page()
        problems = watch(page, base)
        await page.goto(base + "/login")
        await page.fill("#username", ADMIN)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(base + "/")
        await page.locator("#updated", has_text="updated").wait_for(timeout=30_000)

        # A fresh load of the fleet view, timed: first rows, then every page of machines in.
        # Between polls the DOM holds only the rows in view.
        await page.goto("about:blank")
        started = time.monotonic()
        await page.goto(base + "/")
        await page.locator("tr[data-machine]").first.wait_for(timeout=30_000)
        first_rows_s = time.monotonic() - started
        await page.locator("#updated", has_text="updated").wait_for(timeout=30_000)
        loaded_s = time.monotonic() - started
        print(
            f"\nfleet of {AGENTS * PER_AGENT:,} machines: first rows {first_rows_s:.2f} s,"
            f" all loaded and drawn {loaded_s:.2f} s"
        )
        # Printed, not asserted: a test does not judge wall time on a shared machine (STYLE.md);
        # what keeps the page fast at this size, a bounded DOM, is asserted below.
        tile = page.locator("#machines-online .tile-value")
        assert await tile.inner_text() == f"{AGENTS * PER_AGENT - PER_AGENT} / {AGENTS * PER_AGENT}"
        assert await page.locator("#fleet-shown").inner_text() == "5,000 machines"
        rows = await page.evaluate(ROWS)
        print(f"table rows in the DOM: {rows}")
        assert rows < MAX_ROWS, f"{rows} table rows in the DOM"
        print(await api_figures(base))
        # "Needs attention" names the first problems, then counts the rest.
        assert await page.locator("#missing li").count() <= 31
        await page.screenshot(path=str(shots / "fleet-scale.png"))

        # Scrolled halfway down, the rows there are drawn and the DOM stays as small.
        await page.evaluate(
            "(() => { const b = document.querySelector('#machines-scroll');"
            " b.scrollTop = b.scrollHeight / 2; })()"
        )
        await page.locator('tr[data-machine^="site-2/"]').first.wait_for(timeout=5000)
        assert await page.evaluate(ROWS) < MAX_ROWS
        assert await page.locator('tr[data-machine^="site-0/"]').count() == 0

        # Search: a machine deep in the list by its name, by its line, by its agent.
        await search(page, "m437-7")
        deep = page.locator('tr[data-machine="site-4/line-37/m437-7"]')
        await deep.wait_for(timeout=5000)
        assert await page.evaluate(MACHINE_ROWS) == 1
        assert await page.locator("#fleet-shown").inner_text() == "1 of 5,000 machines match"
        await search(page, "agent-377")
        await page.locator('tr[data-machine="site-3/line-77/m377-9"]').wait_for(timeout=5000)
        assert await page.evaluate(MACHINE_ROWS) == PER_AGENT
        states = page.locator('tr[data-machine^="site-3/line-77/"] .badge[data-state="offline"]')
        assert await states.count() == PER_AGENT
        await search(page, "LINE-42")  # case does not matter; one line in each of the 5 sites
        await page.locator('tr[data-machine="site-0/line-42/m042-0"]').wait_for(timeout=5000)
        assert await page.locator("#fleet-shown").inner_text() == "50 of 5,000 machines match"
        await search(page, "no-such-press")
        await page.locator("#machines p", has_text="no-such-press").wait_for(timeout=5000)
        assert await page.evaluate(MACHINE_ROWS) == 0

        # Fold a site, then a line: their machines leave the table, the others stay.
        await search(page, "")
        await page.evaluate("document.querySelector('#machines-scroll').scrollTop = 0")
        site0 = page.locator('tr[data-group="site-0"] button.group-toggle')
        await site0.click()
        assert await site0.get_attribute("aria-expanded") == "false"
        await page.locator('tr[data-machine^="site-1/"]').first.wait_for(timeout=5000)
        assert await page.locator('tr[data-machine^="site-0/"]').count() == 0
        assert await page.locator('tr[data-group="site-0/line-01"]').count() == 0
        await site0.click()
        await page.locator('tr[data-machine="site-0/line-00/m000-0"]').wait_for(timeout=5000)
        line = page.locator('tr[data-group="site-0/line-00"] button.group-toggle')
        await line.click()
        await page.locator('tr[data-machine="site-0/line-01/m001-0"]').wait_for(timeout=5000)
        assert await page.locator('tr[data-machine^="site-0/line-00/"]').count() == 0
        # The fold outlives the next poll.
        await page.wait_for_timeout(3500)
        assert await page.locator('tr[data-machine^="site-0/line-00/"]').count() == 0
        assert await page.locator('tr[data-group="site-0/line-00"]').count() == 1

        # Live: a machine deep in the list turns faulted; the view follows within a few polls.
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(
                "UPDATE machines SET state = 'faulted', detail = 'hydraulic pressure lost'"
                " WHERE machine = 'm437-7'"
            )
        finally:
            await conn.close()
        await search(page, "m437-7")
        await deep.locator('.badge[data-state="faulted"]').wait_for(timeout=15_000)
        assert "hydraulic pressure lost" in await deep.inner_text()
        await page.locator("#summary .tile.tone-faulted .tile-value", has_text="1").wait_for()
        assert await page.evaluate(ROWS) < MAX_ROWS
        await page.screenshot(path=str(shots / "fleet-scale-search.png"))
        assert problems() == []
