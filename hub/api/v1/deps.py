"""The auth dependency: `Depends(requires(services, Role.VIEWER))` → the calling `Principal`.

Credentials: `Authorization: Bearer <access token>` or `X-API-Key: msk_…`. Every request spends
one unit of its address's budget; authenticated ones also of their principal's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from hub.api.v1.services import ApiServices
from hub.auth import Forbidden, NotAuthenticated, Principal, Role, allows

__all__ = ["client_ip", "requires"]

_bearer = HTTPBearer(auto_error=False, description="Access token from /api/v1/auth/login")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (msk_…)")


def client_ip(request: Request) -> str:
    """The peer address (a proxy in front must be trusted explicitly; none is by default)."""
    return request.client.host if request.client else "unknown"


def requires(services: ApiServices, role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the request and demands at least `role`."""

    async def dependency(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        api_key: Annotated[str | None, Depends(_api_key)],
    ) -> Principal:
        limits = services.config.api
        await services.limit(f"ip:{client_ip(request)}", limits.requests_per_minute)
        credential = bearer.credentials if bearer is not None else api_key
        if not credential:
            raise NotAuthenticated("credentials required")
        principal = await services.auth.authenticate(credential)
        await services.limit(f"who:{principal.subject}", limits.requests_per_minute)
        if not allows(principal.role, role):
            raise Forbidden(f"needs role {role.value}; you have {principal.role.value}")
        request.state.principal = principal.subject
        return principal

    return dependency
