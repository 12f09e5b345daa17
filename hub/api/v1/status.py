"""`/agents`, `/devices` (viewer); `/dead-letters` and `/users` (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from hub.api.v1.deps import requires
from hub.api.v1.schemas import AgentOut, DeadLetterOut, DeviceOut, UserOut
from hub.api.v1.services import ApiServices
from hub.auth import Role
from hub.commands.configs import fleet_versions

__all__ = ["status_router"]


def status_router(services: ApiServices) -> APIRouter:
    """Health of the edge, and the dead-letter store."""
    router = APIRouter(tags=["status"], responses={401: {}, 403: {}, 429: {}})
    viewer = [Depends(requires(services, Role.VIEWER))]

    @router.get("/agents", dependencies=viewer)
    async def agents() -> list[AgentOut]:
        """Every agent's last health report: buffer depth and age, drops, drain ETA, and the
        configuration version it runs (docs/commands.md "Remote configuration")."""
        versions = await fleet_versions(services.db)
        return [
            AgentOut(**a, **versions.get(a["agent_id"], {}))
            for a in await services.queries.agents()
        ]

    @router.get("/devices", dependencies=viewer)
    async def devices() -> list[DeviceOut]:
        """Every device an agent reports polling, with its poll error count."""
        out = []
        for a in await services.queries.agents():
            for name, errors in sorted(a["poll_errors"].items()):
                out.append(
                    DeviceOut(
                        agent_id=a["agent_id"],
                        device=name,
                        poll_errors=int(errors),
                        agent_state=a["state"],
                        last_seen_ms=a["last_seen_ms"],
                    )
                )
        return out

    @router.get("/dead-letters", dependencies=[Depends(requires(services, Role.ADMIN))])
    async def dead_letters(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    ) -> list[DeadLetterOut]:
        """Refused messages, newest first (page with before_id)."""
        rows = await services.queries.dead_letters(limit, before_id)
        return [DeadLetterOut.of(r) for r in rows]

    @router.get("/users", dependencies=[Depends(requires(services, Role.ADMIN))])
    async def users() -> list[UserOut]:
        """API users with role and state (manage them with `millstream-hub users`)."""
        return [
            UserOut(name=u.name, role=u.role.value, disabled=u.disabled)
            for u in await services.auth.store.list_users()
        ]

    return router
