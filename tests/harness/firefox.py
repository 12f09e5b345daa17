"""Debian's Firefox ESR driven over WebDriver BiDi, the W3C protocol Firefox has built in.

    async with Firefox(tmp_path / "profile") as ff:
        await ff.goto("http://127.0.0.1:8080/")
        await ff.type("#username", "engineer")
        await ff.click("button[type=submit]")
        await ff.wait_for("document.querySelector('#machines')", what="the fleet table")

No driver binary sits between the test and the browser: `firefox-esr --remote-debugging-port 0`
serves BiDi on a WebSocket and this module talks to it with `websockets` (already installed with
the hub). Playwright cannot drive a stock Firefox (it needs its own patched build, which is
downloaded), and geckodriver would have to be compiled. Clicks and typing are real input events
(`input.performActions`), not `element.click()` from script. Firefox comes from
`scripts/services install` (apt package firefox-esr); nothing is ever downloaded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import websockets

FIREFOX = "/usr/bin/firefox-esr"

# The test machine has no way out: Firefox must not even try (updates, telemetry, safe browsing,
# captive-portal and connectivity probes, remote settings, add-on checks, speculative connects).
# Firefox's remote agent sets many of these itself once it runs; user.js covers start-up too.
PREFS: dict[str, bool | int | str] = {
    "app.update.disabledForTesting": True,
    "app.update.auto": False,
    "browser.aboutwelcome.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.region.network.url": "",
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.tabs.warnOnClose": False,
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "dom.push.connection.enabled": False,
    "extensions.blocklist.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.update.enabled": False,
    "geo.provider.network.url": "",
    "media.gmp-manager.updateEnabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.http.speculative-parallel-limit": 0,
    "network.prefetch-next": False,
    "services.settings.server": "data:,#remote-settings-disabled/v1",
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.server": "",
    "toolkit.telemetry.unified": False,
}


class BiDiError(Exception):
    """A BiDi command failed, or a script threw in the page."""


def firefox_path() -> str:
    """Debian's Firefox ESR; fails with the fix when it is not installed."""
    if os.access(FIREFOX, os.X_OK):
        return FIREFOX
    found = shutil.which("firefox-esr") or shutil.which("firefox")
    if found is None:
        raise FileNotFoundError(f"{FIREFOX} is missing; run scripts/services install")
    return found


def write_profile(profile: Path) -> None:
    profile.mkdir(parents=True, exist_ok=True)
    lines = [f"user_pref({json.dumps(k)}, {json.dumps(v)});" for k, v in PREFS.items()]
    (profile / "user.js").write_text("\n".join(lines) + "\n")


class Firefox:
    """One headless Firefox with a fresh profile, one BiDi session, one tab (`context`)."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 900) -> None:
        self.profile = profile
        self.size = (width, height)
        self.context = ""
        self.errors: list[str] = []  # uncaught errors in the page
        self.requests: list[str] = []  # every URL the tab asked for
        self._log_path = profile.parent / f"{profile.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._ws: Any = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Firefox:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def log(self) -> str:
        """The tail of Firefox's own output (for failure messages)."""
        with contextlib.suppress(OSError):
            return self._log_path.read_text(errors="replace")[-4000:]
        return ""

    def _launch(self) -> None:
        write_profile(self.profile)
        env = {**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1", "MOZ_HEADLESS": "1"}
        with self._log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                [
                    firefox_path(),
                    "-headless",
                    "-no-remote",
                    "-profile",
                    str(self.profile),
                    "--remote-debugging-port",
                    "0",  # Firefox picks a free port and writes it into the profile
                    "about:blank",
                ],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    async def _start(self) -> None:
        self._launch()
        port = await self._bidi_port()
        self._ws = await websockets.connect(
            f"ws://127.0.0.1:{port}/session", max_size=None, open_timeout=30
        )
        self._reader = asyncio.create_task(self._read())
        await self.command("session.new", capabilities={})
        tree = await self.command("browsingContext.getTree", maxDepth=0)
        self.context = tree["contexts"][0]["context"]
        await self.command(
            "browsingContext.setViewport",
            context=self.context,
            viewport={"width": self.size[0], "height": self.size[1]},
        )
        await self.command(
            "session.subscribe",
            events=["log.entryAdded", "network.beforeRequestSent"],
            contexts=[self.context],
        )

    async def _bidi_port(self) -> int:
        info = self.profile / "WebDriverBiDiServer.json"
        deadline = time.monotonic() + 90  # a cold start on a loaded 2-core box is slow
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise BiDiError(f"firefox exited with {self._proc.returncode}: {self.log()}")
            with contextlib.suppress(OSError, ValueError, KeyError):
                return int(json.loads(info.read_text())["ws_port"])
            await asyncio.sleep(0.1)
        raise BiDiError(f"firefox did not open its BiDi port within 90 s: {self.log()}")

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                self._dispatch(json.loads(raw))
        except websockets.ConnectionClosed:
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(BiDiError(f"firefox closed the session: {self.log()}"))

    def _dispatch(self, msg: dict[str, Any]) -> None:
        if "id" in msg and msg["id"] in self._pending:
            self._pending.pop(msg["id"]).set_result(msg)
        elif msg.get("method") == "log.entryAdded":
            entry = msg["params"]
            if entry.get("type") == "javascript":
                self.errors.append(entry.get("text", ""))
        elif msg.get("method") == "network.beforeRequestSent":
            self.requests.append(msg["params"]["request"]["url"])

    async def command(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one BiDi command and return its result; an error answer raises BiDiError."""
        ident = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = fut
        await self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        msg = await asyncio.wait_for(fut, 60)
        if msg.get("type") == "error":
            raise BiDiError(f"{method}: {msg.get('error')}: {msg.get('message')}")
        result: dict[str, Any] = msg["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises are awaited)."""
        answer = await self.command(
            "script.evaluate",
            expression=f"(async () => JSON.stringify((await ({expression})) ?? null))()",
            target={"context": self.context},
            awaitPromise=True,
        )
        if answer["type"] == "exception":
            details = answer["exceptionDetails"]
            raise BiDiError(f"{expression}: {details.get('text')}")
        return json.loads(answer["result"]["value"])

    async def wait_for(self, expression: str, *, within: float = 10, what: str = "") -> Any:
        """Poll an expression until it is truthy in JavaScript; returns its value (an element
        as True), fails after `within` seconds."""
        deadline = time.monotonic() + within
        # Truthiness is JavaScript's: an element serialises to {}, which Python finds false.
        probe = f"(v => [!!v, v instanceof Node || v])(await ({expression}))"
        value: Any = None
        while True:
            if self._reader is not None and self._reader.done():
                raise BiDiError(f"firefox closed the session: {self.log()}")
            with contextlib.suppress(BiDiError):  # a navigation can discard the realm mid-call
                ok, value = await self.evaluate(probe)
                if ok:
                    return value
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"waited {within} s for {what or expression}; last value {value!r}"
                )
            await asyncio.sleep(0.05)

    async def goto(self, url: str) -> None:
        await self.command(
            "browsingContext.navigate", context=self.context, url=url, wait="complete"
        )

    async def url(self) -> str:
        return str(await self.evaluate("location.href"))

    async def wait_url(self, url: str, within: float = 10) -> None:
        await self.wait_for(f"location.href === {json.dumps(url)}", within=within, what=url)

    async def click(self, selector: str, within: float = 10) -> None:
        """A real mouse click in the middle of the first element matching `selector`."""
        box = await self.wait_for(
            f"""(() => {{
                const el = document.querySelector({json.dumps(selector)});
                if (!el) return null;
                el.scrollIntoView({{block: "center", inline: "center"}});
                const r = el.getBoundingClientRect();
                return r.width > 0 && r.height > 0 ? [r.x + r.width / 2, r.y + r.height / 2] : null;
            }})()""",
            within=within,
            what=f"a visible {selector}",
        )
        x, y = round(box[0]), round(box[1])
        await self.command(
            "input.performActions",
            context=self.context,
            actions=[
                {
                    "type": "pointer",
                    "id": "mouse",
                    "parameters": {"pointerType": "mouse"},
                    "actions": [
                        {"type": "pointerMove", "x": x, "y": y},
                        {"type": "pointerDown", "button": 0},
                        {"type": "pointerUp", "button": 0},
                    ],
                }
            ],
        )

    async def type(self, selector: str, text: str) -> None:
        """Click into a field, clear it and type `text` key by key."""
        await self.click(selector)
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
        keys: list[dict[str, str]] = []
        for ch in text:
            keys += [{"type": "keyDown", "value": ch}, {"type": "keyUp", "value": ch}]
        await self.command(
            "input.performActions",
            context=self.context,
            actions=[{"type": "key", "id": "keyboard", "actions": keys}],
        )

    async def screenshot(self, path: Path) -> tuple[int, int]:
        """A PNG of the whole page; returns its (width, height) as the PNG header states."""
        answer = await self.command(
            "browsingContext.captureScreenshot", context=self.context, origin="document"
        )
        png = base64.b64decode(answer["data"])
        if png[:8] != b"\x89PNG\r\n\x1a\n":
            raise BiDiError("captureScreenshot did not return a PNG")
        await asyncio.to_thread(path.write_bytes, png)
        return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")

    async def close(self) -> None:
        """End the session and the browser; killed by PID if it does not quit in 30 s."""
        if self._ws is not None:
            with contextlib.suppress(BiDiError, TimeoutError, websockets.ConnectionClosed):
                await asyncio.wait_for(self.command("browser.close"), 30)
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._proc is not None and self._proc.poll() is None:
            try:
                await asyncio.to_thread(self._proc.wait, 30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                await asyncio.to_thread(self._proc.wait, 10)
