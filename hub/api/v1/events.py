"""`GET /events` (viewer): machine events — alarms raised, acknowledged, cleared — as machines
and agents published them on `ms/v1/{site}/{line}/{machine}/events`; `POST /events/acknowledge`
(operator): acknowledge an OPC-UA alarm condition through the machine's agent (docs/events.md)."""

# No `from __future__ import annotations`: FastAPI must resolve `Depends(operator)`, a closure
# variable, when it reads the signature (as in commands.py).

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

import wire
from hub.api.v1.commands import send_command
from hub.api.v1.deps import requires
from hub.api.v1.schemas import AcknowledgeIn, CommandOut
from hub.api.v1.services import ApiServices
from hub.auth import Principal, Role

__all__ = ["EventOut", "events_router"]

Segment = Annotated[str | None, Query(pattern=f"^{wire.SEGMENT_PATTERN}$")]


class EventOut(BaseModel):
    site: str
    line: str
    machine: str
    id: str
    ts: int
    source: str
    type: str
    severity: int
    message: str
    state: str | None
    fields: dict[str, Any]
    src: str
    received_at: int


def events_router(services: ApiServices) -> APIRouter:
    router = APIRouter(tags=["events"], responses={401: {}, 403: {}, 429: {}})
    viewer = [Depends(requires(services, Role.VIEWER))]
    operator = requires(services, Role.OPERATOR)

    @router.get("/events", dependencies=viewer)
    async def events(  # noqa: PLR0917 -- the filters a tool asks by
        site: Segment = None,
        line: Segment = None,
        machine: Segment = None,
        min_severity: Annotated[int, Query(ge=1, le=1000)] = 1,
        since_ms: Annotated[int, Query(ge=0, le=wire.MAX_TS)] = 0,
        until_ms: Annotated[int, Query(ge=0, le=wire.MAX_TS)] = wire.MAX_TS,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[EventOut]:
        """Events newest first, by machine, severity (at least) and time [since_ms, until_ms)."""
        where = ["severity >= $1", "ts >= $2", "ts < $3"]
        args: list[Any] = [min_severity, since_ms, until_ms]
        for column, value in (("site", site), ("line", line), ("machine", machine)):
            if value is not None:
                args.append(value)
                where.append(f"{column} = ${len(args)}")
        args.append(limit)
        rows = await services.db.fetch(
            "SELECT site, line, machine, event_id, ts, source, type, severity, message, state,"  # noqa: S608 -- fixed columns, values bound
            f" fields, src, received_at FROM machine_events WHERE {' AND '.join(where)}"
            f" ORDER BY ts DESC LIMIT ${len(args)}",
            *args,
        )
        return [
            EventOut(
                **{k: r[k] for k in ("site", "line", "machine", "ts", "source", "type")},
                id=r["event_id"], severity=r["severity"], message=r["message"],
                state=r["state"], fields=json.loads(r["fields"]), src=r["src"],
                received_at=r["received_at"],
            )
            for r in rows
        ]  # fmt: skip

    @router.post(
        "/events/acknowledge",
        responses={202: {"description": "sent; no answer yet: poll /commands/{id}"},
                   404: {}, 422: {}, 503: {}},
    )  # fmt: skip
    async def acknowledge(
        body: AcknowledgeIn, who: Annotated[Principal, Depends(operator)], response: Response
    ) -> CommandOut:
        """Acknowledge a machine's alarm condition (operator; OPC-UA): an `acknowledge` command
        to the machine's agent, audited like a write, answered like one (`done`, or `refused`
        when the agent knows no unacknowledged condition with this event id)."""
        what = {"kind": "acknowledge", "event": body.id, "comment": body.comment}
        where = (body.site, body.line, body.machine)
        return await send_command(services, where, what, body, who=who, response=response)

    return router
