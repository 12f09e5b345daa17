"""The engineers' web dashboard, served by the hub at `/` (docs/dashboard.md).

The single-page app is built from `dashboard/` by `scripts/build-dashboard` into
`hub/dashboard/static/`, which is committed and shipped in the wheel, so a hub installed with
`pip install millstream[hub]` serves it with no npm and no internet. It is the router's
*default* app: every route the hub declares (`/api/v1`, `/ws`, `/health`, `/metrics`) matches
first, whatever order they were added in; any other GET gets a built file or, for the app's own
paths (`/fleet`, `/machines/…`), `index.html`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketClose

__all__ = ["STATIC_DIR", "SpaFiles", "install_dashboard"]

STATIC_DIR = Path(__file__).with_name("static")
# Paths that belong to the hub's machinery: never answered with the app's index.html.
_RESERVED = ("/api/", "/ws", "/health/", "/metrics")


class SpaFiles(StaticFiles):
    """Built assets; unknown non-file paths fall back to `index.html` (client-side routes)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """A built file, else the app shell for the app's own routes, else 404."""
        request_path: str = scope["path"]
        if request_path.startswith(_RESERVED):
            return JSONResponse({"detail": "Not Found"}, 404)
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            last = request_path.rsplit("/", 1)[-1]
            if exc.status_code != 404 or "." in last:  # a missing asset stays a 404
                raise
            response = await super().get_response("index.html", scope)
            response.headers["Cache-Control"] = "no-cache"
            return response
        # Vite names assets by content hash: cache them forever; never the shell.
        if request_path.startswith("/assets/"):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        else:
            response.headers["Cache-Control"] = "no-cache"
        return response


class _Dashboard:
    def __init__(self, directory: Path) -> None:
        self._index = directory / "index.html"
        self._files = SpaFiles(directory=directory, html=True, check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await WebSocketClose()(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        if not self._index.is_file():
            await PlainTextResponse("dashboard not built: run scripts/build-dashboard", 404)(
                scope, receive, send
            )
            return
        await self._files(scope, receive, send)


def install_dashboard(app: FastAPI, directory: Path = STATIC_DIR) -> None:
    """Serve the dashboard for every request no other route of `app` matches."""
    app.router.default = _Dashboard(directory)
