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


# How many addresses' worth of guesses one user name takes in a minute, from all of them.
BACKSTOP_ADDRESSES = 10


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
        ip = client_ip(request)
        # One address guesses slowly, for any user and for each one; a user's own budget is
        # per address, so nobody elsewhere can use it up and lock them out. The backstop per
        # user (ten addresses' worth) caps guessing spread over many addresses.
        await services.limit(f"login-ip:{ip}", per_minute)
        await services.limit(f"login-user-ip:{body.username}|{ip}", per_minute)
        await services.limit(f"login-user:{body.username}", per_minute * BACKSTOP_ADDRESSES)
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
