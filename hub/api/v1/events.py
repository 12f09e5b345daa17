"""`GET /events` (viewer): machine events — alarms raised, acknowledged, cleared — as machines
and agents published them on `ms/v1/{site}/{line}/{machine}/events` (docs/events.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

import wire
from hub.api.v1.deps import requires
from hub.api.v1.services import ApiServices
from hub.auth import Role

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

    return router
