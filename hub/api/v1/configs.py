"""Remote configuration of agents (admin): versions, push, rollback (docs/commands.md)."""

# No `from __future__ import annotations`: FastAPI must resolve `Depends(admin)`, a closure
# variable, when it reads the signature (as in auth_routes.py).

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import ValidationError

import wire
from hub.api.v1.deps import requires
from hub.api.v1.schemas import AgentConfigOut, ConfigPushIn, ConfigRollbackIn, ConfigVersionOut
from hub.api.v1.services import ApiServices
from hub.auth import Principal, Role
from hub.commands.configs import (
    ConfigError,
    UnknownAgentError,
    config_history,
    current_version,
    get_version,
    push_config,
    rollback_target,
)
from hub.commands.issue import NotConnectedError

__all__ = ["configs_router"]

AgentId = Annotated[str, Path(pattern=f"^{wire.SEGMENT_PATTERN}$")]


def configs_router(services: ApiServices) -> APIRouter:
    """Agent configuration routes (all admin: a config names every device of a line)."""
    admin = requires(services, Role.ADMIN)
    router = APIRouter(tags=["agent configuration"], responses={401: {}, 403: {}, 429: {}})

    @router.get("/agents/{agent_id}/config", dependencies=[Depends(admin)])
    async def config(agent_id: AgentId) -> AgentConfigOut:
        """The version the agent runs (with its files) and the newest pushed."""
        running = await current_version(services.db, agent_id)
        history = await config_history(services.db, agent_id, 1)
        kept = None if running is None else await get_version(services.db, agent_id, running)
        return AgentConfigOut(
            agent_id=agent_id,
            version=running,
            config=None if kept is None else ConfigVersionOut.model_validate(kept),
            latest=ConfigVersionOut.model_validate(history[0]) if history else None,
        )

    @router.get("/agents/{agent_id}/config/history", dependencies=[Depends(admin)])
    async def history(
        agent_id: AgentId, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[ConfigVersionOut]:
        """Every version pushed, newest first, with what became of it (no files)."""
        rows = await config_history(services.db, agent_id, limit)
        return [ConfigVersionOut.model_validate(r) for r in rows]

    @router.get(
        "/agents/{agent_id}/config/versions/{version}",
        dependencies=[Depends(admin)],
        responses={404: {}},
    )
    async def version(
        agent_id: AgentId, version: Annotated[int, Path(ge=1, le=2**31 - 1)]
    ) -> ConfigVersionOut:
        """One version with its files."""
        row = await get_version(services.db, agent_id, version)
        if row is None:
            raise HTTPException(404, f"agent {agent_id} has no config version {version}")
        return ConfigVersionOut.model_validate(row)

    @router.post(
        "/agents/{agent_id}/config",
        status_code=202,
        responses={404: {}, 422: {}, 503: {}},
    )
    async def push(
        agent_id: AgentId, body: ConfigPushIn, who: Annotated[Principal, Depends(admin)]
    ) -> ConfigVersionOut:
        """Push a new version (202: the agent answers when it has kept it or rolled it back,
        up to `rollback_after` seconds later; poll the history or `/commands/{command_id}`)."""
        return await send(agent_id, body.files, body.rollback_after, body.comment, who)

    @router.post(
        "/agents/{agent_id}/config/rollback",
        status_code=202,
        responses={404: {}, 409: {}, 503: {}},
    )
    async def rollback(
        agent_id: AgentId, body: ConfigRollbackIn, who: Annotated[Principal, Depends(admin)]
    ) -> ConfigVersionOut:
        """Push an earlier version's files again, as a new version."""
        try:
            target = await rollback_target(services.db, agent_id, body.to)
        except ConfigError as exc:
            raise HTTPException(409, str(exc)) from None
        comment = f"rollback to version {target['version']}"
        return await send(agent_id, target["files"], body.rollback_after, comment, who)

    async def send(
        agent_id: str, files: dict[str, str], rollback_after: float, comment: str,
        who: Principal,
    ) -> ConfigVersionOut:  # fmt: skip
        try:
            row = await push_config(
                services.db,
                services.publish,
                agent_id=agent_id,
                files=files,
                who=who.subject,
                now_ms=services.now_ms(),
                rollback_after=rollback_after,
                comment=comment,
            )
        except UnknownAgentError as exc:
            raise HTTPException(404, str(exc)) from None
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        except NotConnectedError as exc:
            raise HTTPException(503, str(exc)) from None
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in error["loc"])
            raise HTTPException(422, f"{where}: {error['msg']}") from None
        return ConfigVersionOut.model_validate(row)

    return router
