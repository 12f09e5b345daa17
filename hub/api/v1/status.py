"""`/agents`, `/devices` (viewer); `/dead-letters` and `/users` (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from hub.api.v1.deps import requires
from hub.api.v1.paging import MAX_LIMIT, After, Limit, decode_cursor, next_page
from hub.api.v1.schemas import AgentOut, DeadLetterOut, DeviceOut, UserOut
from hub.api.v1.services import ApiServices
from hub.auth import Role
from hub.commands.configs import fleet_versions

__all__ = ["status_router"]


def status_router(services: ApiServices) -> APIRouter:
    """Health of the edge, and the dead-letter store."""
    router = APIRouter(tags=["status"], responses={401: {}, 403: {}, 429: {}})
    viewer = [Depends(requires(services, Role.VIEWER))]

    @router.get("/agents", dependencies=viewer, responses={422: {}})
    async def agents(
        request: Request, response: Response, limit: Limit = None, after: After = None
    ) -> list[AgentOut]:
        """Every agent's last health report: buffer depth and age, drops, drain ETA, and the
        configuration version it runs (docs/commands.md "Remote configuration"), by agent id;
        page with `limit` and `after` (the `X-Next-Cursor` header)."""
        start = None if after is None else str(decode_cursor("agents", after, (str,))[0])
        rows = await services.queries.agents(
            after=start, limit=None if limit is None else limit + 1
        )
        if limit is not None and len(rows) > limit:
            next_page(request, response, "agents", (rows[limit - 1]["agent_id"],))
        versions = await fleet_versions(services.db)
        return [AgentOut(**a, **versions.get(a["agent_id"], {})) for a in rows[:limit]]

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

    @router.get(
        "/dead-letters",
        dependencies=[Depends(requires(services, Role.ADMIN))],
        responses={422: {}},
    )
    async def dead_letters(
        request: Request,
        response: Response,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
        before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
        after: After = None,
    ) -> list[DeadLetterOut]:
        """Refused messages, newest first, at most `limit` (default 100); page with `after`
        (the `X-Next-Cursor` header) or `before_id` (the last id seen)."""
        if after is not None:
            if before_id is not None:
                raise HTTPException(422, "give `after` or `before_id`, not both")
            before_id = int(decode_cursor("dead-letters", after, (int,))[0])
        rows = await services.queries.dead_letters(limit + 1, before_id)
        if len(rows) > limit:
            next_page(request, response, "dead-letters", (int(rows[limit - 1]["id"]),))
        return [DeadLetterOut.of(r) for r in rows[:limit]]

    @router.get("/users", dependencies=[Depends(requires(services, Role.ADMIN))])
    async def users() -> list[UserOut]:
        """API users with role and state (manage them with `millstream-hub users`)."""
        return [
            UserOut(name=u.name, role=u.role.value, disabled=u.disabled)
            for u in await services.auth.store.list_users()
        ]

    return router
