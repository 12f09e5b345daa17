"""Do 10 live charts of 10,000 points each stay smooth? Prints and records the figure.

Opens the built dashboard's `/bench/charts` page in Debian's Chromium (headless, software
rendering, the same flags as the browser tests): N uPlot charts of P points each, every chart
receiving R readings per second and sliding its time window, exactly the code path of the machine
page. The page's files are served straight from `hub/dashboard/static/` through Playwright's
request routing (no hub, no network). Figures: frame intervals (p50/p95/p99/max; 16.7 ms is 60
frames per second) and main-thread long tasks (> 50 ms).

    .venv/bin/python bench/dashboard_charts.py [--charts 10] [--points 10000] [--rate 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mimetypes
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from playwright.async_api import Route, async_playwright

from hub.dashboard import STATIC_DIR

RESULTS = Path(__file__).parent / "results" / "dashboard_charts.json"
ORIGIN = "http://dashboard.bench"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def serve(route: Route) -> None:
    path = route.request.url.removeprefix(ORIGIN).split("?")[0]
    file = STATIC_DIR / path.lstrip("/")
    if not file.is_file():
        file = STATIC_DIR / "index.html"
    kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    await route.fulfill(body=file.read_bytes(), content_type=kind)


async def run(charts: int, points: int, rate: int, seconds: int) -> dict[str, Any]:
    async with async_playwright() as pw:
        with tempfile.TemporaryDirectory() as profile:
            context = await pw.chromium.launch_persistent_context(
                profile,
                executable_path="/usr/bin/chromium",
                args=ARGS,
                viewport={"width": 1600, "height": 1200},
            )
            try:
                page = await context.new_page()
                await page.route(f"{ORIGIN}/**", serve)
                await page.goto(
                    f"{ORIGIN}/bench/charts?charts={charts}&points={points}"
                    f"&rate={rate}&seconds={seconds}"
                )
                await page.wait_for_function(
                    "() => window.__chartBench !== undefined", timeout=(seconds + 60) * 1000
                )
                result: dict[str, Any] = await page.evaluate("window.__chartBench")
                browser_version = context.browser.version if context.browser else "?"
            finally:
                await context.close()
    load = os.getloadavg()
    return {
        "bench": "dashboard_charts",
        **result,
        "browser": f"Chromium {browser_version} headless, --disable-gpu (software rendering)",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_1m": round(load[0], 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--charts", type=int, default=10)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=10, help="readings per second per chart")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    result = asyncio.run(run(args.charts, args.points, args.rate, args.seconds))
    print(json.dumps(result, indent=1))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
