"""Writes and method calls to machines (operator) and the command audit log (docs/commands.md);
`send_command` is how every route that commands a machine sends (events.py acknowledges)."""

# No `from __future__ import annotations`: FastAPI must resolve `Depends(operator)`, a closure
# variable, when it reads the signature (as in auth_routes.py).

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from pydantic import ValidationError

import wire
from hub.api.v1.deps import requires
from hub.api.v1.schemas import CallIn, CommandIn, CommandOut, WriteIn
from hub.api.v1.services import ApiServices
from hub.auth import Principal, Role
from hub.commands.issue import NoAgentError, NotConnectedError, issue
from hub.commands.store import get_command, list_commands

__all__ = ["commands_router", "send_command"]

Segment = Annotated[str, Path(pattern=f"^{wire.SEGMENT_PATTERN}$")]
TagName = Annotated[str, Path(pattern=f"^{wire.TAG_PATTERN}$")]
SegmentQuery = Annotated[str | None, Query(pattern=f"^{wire.SEGMENT_PATTERN}$")]
CommandId = Annotated[str, Path(pattern=f"^{wire.UUID_PATTERN}$")]


def commands_router(services: ApiServices) -> APIRouter:
    """Command routes."""
    router = APIRouter(tags=["commands"], responses={401: {}, 403: {}, 429: {}})
    operator = requires(services, Role.OPERATOR)
    admin = requires(services, Role.ADMIN)

    @router.post(
        "/machines/{site}/{line}/{machine}/tags/{tag}/write",
        responses={202: {"description": "sent; no answer yet: poll /commands/{id}"},
                   404: {}, 422: {}, 503: {}},
    )  # fmt: skip
    async def write(
        *,
        site: Segment,
        line: Segment,
        machine: Segment,
        tag: TagName,
        body: WriteIn,
        who: Annotated[Principal, Depends(operator)],
        response: Response,
    ) -> CommandOut:
        """Write a tag of a machine through its agent (operator). Answers with the agent's
        result (`done`, `refused`, `failed`, `expired`, with the value before and read back)
        within `wait` seconds, or 202 with the command still `pending`."""
        what = {"kind": "write", "tag": tag, "value": body.value}
        return await send_command(
            services, (site, line, machine), what, body, who=who, response=response
        )

    @router.post(
        "/machines/{site}/{line}/{machine}/methods/{method}/call",
        responses={202: {"description": "sent; no answer yet: poll /commands/{id}"},
                   404: {}, 422: {}, 503: {}},
    )  # fmt: skip
    async def call(
        *,
        site: Segment,
        line: Segment,
        machine: Segment,
        method: TagName,
        body: CallIn,
        who: Annotated[Principal, Depends(operator)],
        response: Response,
    ) -> CommandOut:
        """Call a method the machine's profile declares (operator; OPC-UA). Answers like a
        write; the method's outputs are in `read_back` (a list)."""
        what = {"kind": "call", "method": method, "args": tuple(body.args)}
        return await send_command(
            services, (site, line, machine), what, body, who=who, response=response
        )

    @router.get("/commands/{command_id}", responses={404: {}})
    async def command(
        command_id: CommandId, _who: Annotated[Principal, Depends(operator)]
    ) -> CommandOut:
        """One command and its result so far (operator)."""
        row = await get_command(services.db, command_id)
        if row is None:
            raise HTTPException(404, "no such command")
        return CommandOut.model_validate(row)

    @router.get("/commands", dependencies=[Depends(admin)])
    async def commands(
        *,
        site: SegmentQuery = None,
        line: SegmentQuery = None,
        machine: SegmentQuery = None,
        before: Annotated[int | None, Query(ge=0, le=2**53)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[CommandOut]:
        """The audit log, newest first (admin): who asked what of which machine, the value
        before and after, and the result; page with `before` (the last page's oldest
        `issued_at`)."""
        rows = await list_commands(
            services.db, site=site, line=line, machine=machine, before_ms=before, limit=limit
        )
        return [CommandOut.model_validate(r) for r in rows]

    return router


async def send_command(
    services: ApiServices, where: tuple[str, str, str], what: dict[str, Any], body: CommandIn,
    *, who: Principal, response: Response,
) -> CommandOut:  # fmt: skip
    """Issue a command (`what`: its kind and fields) to the machine's agent and answer with
    its result, or 202 while it is pending; 404 without an agent, 503 without a broker."""
    site, line, machine = where
    try:
        row = await issue(
            services.db,
            services.publish,
            site=site,
            line=line,
            machine=machine,
            who=who.subject,
            now_ms=services.now_ms(),
            expires_in_ms=round(body.expires_in * 1000),
            wait_s=body.wait,
            what=what,
        )
    except NoAgentError as exc:
        raise HTTPException(404, f"{exc}: only machines an agent polls take commands") from None
    except NotConnectedError as exc:
        raise HTTPException(503, str(exc)) from None
    except ValidationError as exc:
        raise HTTPException(422, exc.errors(include_url=False)[0]["msg"]) from None
    if row["status"] == "pending":
        response.status_code = 202
    return CommandOut.model_validate(row)
