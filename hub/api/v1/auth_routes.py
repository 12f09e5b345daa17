"""`/auth/login`, `/auth/refresh`, `/auth/me`."""

# No `from __future__ import annotations`: FastAPI must resolve `Depends(viewer)`, a closure
# variable, when the route is declared.
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from hub.api.v1.deps import client_ip, requires
from hub.api.v1.schemas import LoginIn, MeOut, RefreshIn, TokenOut
from hub.api.v1.services import ApiServices
from hub.auth import Principal, Role, TokenPair

__all__ = ["auth_router"]


def _out(pair: TokenPair) -> TokenOut:
    return TokenOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


def auth_router(services: ApiServices) -> APIRouter:
    """Routes that issue and inspect credentials."""
    router = APIRouter(prefix="/auth", tags=["auth"])
    viewer = requires(services, Role.VIEWER)

    @router.post("/login", responses={401: {}, 429: {}})
    async def login(body: LoginIn, request: Request) -> TokenOut:
        """Exchange user name and password for an access and a refresh token."""
        per_minute = services.config.api.logins_per_minute
        # Strict, and by both address and name: one address cannot guess many passwords, and
        # many addresses cannot guess one user's.
        await services.limit(f"login-ip:{client_ip(request)}", per_minute)
        await services.limit(f"login-user:{body.username}", per_minute)
        return _out(await services.auth.login(body.username, body.password))

    @router.post("/refresh", responses={401: {}, 429: {}})
    async def refresh(body: RefreshIn, request: Request) -> TokenOut:
        """Exchange a refresh token for a new pair; the presented one stops working."""
        await services.limit(
            f"refresh-ip:{client_ip(request)}", services.config.api.logins_per_minute * 6
        )
        return _out(await services.auth.refresh(body.refresh_token))

    @router.get("/me", responses={401: {}})
    async def me(principal: Annotated[Principal, Depends(viewer)]) -> MeOut:
        """Who the presented credentials belong to."""
        return MeOut(subject=principal.subject, role=principal.role.value, kind=principal.kind)

    return router
