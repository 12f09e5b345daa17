"""The built dashboard as the hub serves it: the SPA at `/`, nothing shadowed, nothing external."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from fastapi import FastAPI

from hub.api import create_app
from hub.dashboard import STATIC_DIR
from hub.metrics import HubMetrics

REPO = Path(__file__).resolve().parents[3]


class _Health:
    broker_connected = True

    async def ping_storage(self) -> None:
        return None


def _app() -> FastAPI:
    app = create_app(_Health(), HubMetrics())
    # Mounted after the dashboard was installed, as the runtime mounts /api/v1 and /ws.
    api = FastAPI()

    @api.get("/machines")
    async def machines() -> list[str]:
        return ["m1"]

    app.mount("/api/v1", api)
    return app


async def _get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        return await client.get(path)


async def test_index_and_client_routes_get_the_app_shell() -> None:
    index = (STATIC_DIR / "index.html").read_text()
    for path in ("/", "/login", "/fleet", "/completeness", "/machines/s1/l1/press-01"):
        r = await _get(path)
        assert r.status_code == 200, path
        assert r.text == index
        assert r.headers["cache-control"] == "no-cache"


async def test_hashed_assets_are_served_and_cached_missing_ones_are_404() -> None:
    index = (STATIC_DIR / "index.html").read_text()
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', index)
    assert any(a.endswith(".js") for a in assets)
    assert any(a.endswith(".css") for a in assets)
    for asset in assets:
        r = await _get(asset)
        assert r.status_code == 200
        assert "immutable" in r.headers["cache-control"]
    assert (await _get("/assets/nope-123.js")).status_code == 404


async def test_hub_routes_win_over_the_dashboard() -> None:
    assert (await _get("/health/live")).json() == {"status": "ok"}
    assert (await _get("/api/v1/machines")).json() == ["m1"]
    missing = await _get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert "<html" not in missing.text
    assert (await _get("/api/v2/anything")).status_code == 404


def test_bundle_fetches_nothing_from_the_internet() -> None:
    for path in STATIC_DIR.rglob("*"):
        if path.suffix in {".html", ".js", ".css"}:
            text = path.read_text()
            # The only absolute URLs a bundle may carry are XML namespaces (SVG), never fetched.
            urls = set(re.findall(r"https?://[^\s\"'`)]+", text))
            assert {u for u in urls if not u.startswith("http://www.w3.org/")} == set(), path


def test_lockfile_pins_versions_and_names_no_registry() -> None:
    lock_text = (REPO / "dashboard" / "package-lock.json").read_text()
    assert '"resolved"' not in lock_text
    assert "registry" not in lock_text
    lock = json.loads(lock_text)
    package = json.loads((REPO / "dashboard" / "package.json").read_text())
    for section in ("dependencies", "devDependencies"):
        for name, version in package[section].items():
            assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} must be pinned exactly"
            assert lock["packages"][f"node_modules/{name}"]["version"] == version
