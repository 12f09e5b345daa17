"""FastAPI application: `/health/live`, `/health/ready`, `/metrics`."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

from hub.api.headers import SecurityHeaders
from hub.dashboard import install_dashboard
from hub.errors import StorageUnavailable
from hub.metrics import HubMetrics

__all__ = ["HealthSource", "create_app"]


class HealthSource(Protocol):
    """What readiness is judged on: the broker session and the storage backend."""

    @property
    def broker_connected(self) -> bool: ...

    async def ping_storage(self) -> None: ...


def create_app(health: HealthSource, metrics: HubMetrics) -> FastAPI:
    """Build the HTTP app around a running hub's health and metrics."""
    app = FastAPI(title="Millstream hub", docs_url=None, redoc_url=None)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        storage = "ok"
        try:
            async with asyncio.timeout(2):
                await health.ping_storage()
        except (StorageUnavailable, TimeoutError) as exc:
            storage = f"unavailable: {exc}"[:300]
        broker = "ok" if health.broker_connected else "disconnected"
        ok = storage == "ok" and broker == "ok"
        body: dict[str, Any] = {
            "status": "ok" if ok else "unavailable",
            "storage": storage,
            "broker": broker,
        }
        # Kafka relay lag and Redis state: detail only, they never make the hub unready.
        bridge_health = getattr(health, "bridge_health", None)
        if bridge_health is not None:
            body.update(bridge_health())
        return JSONResponse(
            body,
            status_code=200 if ok else 503,
        )

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        # A scraper that asks for OpenMetrics gets the exemplars too: the commit-latency
        # histogram's link each bucket to a trace (docs/tracing.md).
        if "application/openmetrics-text" in request.headers.get("accept", ""):
            return Response(
                openmetrics.generate_latest(metrics.registry),  # type: ignore[no-untyped-call]
                media_type=openmetrics.CONTENT_TYPE_LATEST,
            )
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # The web dashboard (docs/dashboard.md) answers whatever no route above or mounted later does.
    install_dashboard(app)
    app.add_middleware(SecurityHeaders)
    return app
