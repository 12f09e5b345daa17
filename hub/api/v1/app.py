"""Mounting `/api/v1` (and `/ws`) on the hub's FastAPI app; auth errors → 401/403/429."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from hub.api.v1.alerts import alert_rules_router, alert_shelves_router, alerts_router
from hub.api.v1.auth_routes import auth_router
from hub.api.v1.commands import commands_router
from hub.api.v1.configs import configs_router
from hub.api.v1.enrol import enrol_router
from hub.api.v1.events import events_router
from hub.api.v1.identities import identities_router
from hub.api.v1.machines import machines_router
from hub.api.v1.middleware import RequestLog
from hub.api.v1.series import series_router
from hub.api.v1.services import ApiServices
from hub.api.v1.status import status_router
from hub.auth import Forbidden, NotAuthenticated, RateLimited
from hub.errors import StorageUnavailable
from hub.live import LiveEndpoint, LiveMetrics, mount_live

__all__ = ["build_v1", "mount_api"]


def build_v1(services: ApiServices) -> FastAPI:
    """The `/api/v1` application (its OpenAPI document at `/api/v1/openapi.json`)."""
    v1 = FastAPI(
        title="Millstream hub API",
        version="1",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    for router in (
        auth_router(services),
        alerts_router(services),
        alert_rules_router(services),
        alert_shelves_router(services),
        commands_router(services),
        configs_router(services),
        enrol_router(services),
        events_router(services),
        identities_router(services),
        machines_router(services),
        series_router(services),
        status_router(services),
    ):
        v1.include_router(router)

    @v1.exception_handler(NotAuthenticated)
    async def unauthenticated(request: Request, exc: NotAuthenticated) -> JSONResponse:
        return JSONResponse(
            {"detail": "not authenticated"}, 401, headers={"WWW-Authenticate": "Bearer"}
        )

    @v1.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 403)

    @v1.exception_handler(RateLimited)
    async def limited(request: Request, exc: RateLimited) -> JSONResponse:
        retry = max(1, round(exc.retry_after_s + 0.5))
        return JSONResponse(
            {"detail": "too many requests"}, 429, headers={"Retry-After": str(retry)}
        )

    @v1.exception_handler(StorageUnavailable)
    async def unavailable(request: Request, exc: StorageUnavailable) -> JSONResponse:
        return JSONResponse({"detail": "storage unavailable"}, 503, headers={"Retry-After": "5"})

    return v1


def mount_api(app: FastAPI, services: ApiServices, registry: CollectorRegistry) -> None:
    """Add `/api/v1`, `/ws`, request logging and (only if configured) CORS to `app`."""
    app.mount("/api/v1", build_v1(services))
    live = LiveEndpoint(
        services.fanout,
        services.auth.authenticate,
        services.queries.series_by_id,
        LiveMetrics(registry),
        latest=services.latest,
        clock=services.clock,
    )
    mount_live(app, live)
    origins = list(services.config.api.cors_origins)
    if origins:  # closed by default: no CORS headers at all
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
            # A cross-origin client pages with these (docs/api.md "Paging").
            expose_headers=["X-Next-Cursor", "Link"],
        )
    app.add_middleware(RequestLog, registry=registry)
