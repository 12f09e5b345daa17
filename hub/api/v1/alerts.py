"""`/alerts`: occurrences (viewer) and acknowledging one (operator)."""

# No `from __future__ import annotations`: FastAPI must resolve `Depends(operator)`, a closure
# variable, when it reads the signature (as in auth_routes.py).

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

import wire
from hub.alerts.store import acknowledge
from hub.api.v1.deps import requires
from hub.api.v1.schemas import AckIn, AlertOut
from hub.api.v1.services import ApiServices
from hub.auth import Principal, Role
from hub.query.alerts import AlertFilter, list_alerts

__all__ = ["alerts_router"]

Segment = Annotated[str | None, Query(pattern=f"^{wire.SEGMENT_PATTERN}$")]
EpochMs = Annotated[int | None, Query(ge=0, le=2**53)]


def alerts_router(services: ApiServices) -> APIRouter:
    """Alert routes (docs/alerts.md, "API")."""
    router = APIRouter(tags=["alerts"], responses={401: {}, 403: {}, 429: {}})
    viewer = requires(services, Role.VIEWER)
    operator = requires(services, Role.OPERATOR)

    @router.get("/alerts", dependencies=[Depends(viewer)])
    async def alerts(
        *,
        state: AlertFilter | None = None,
        site: Segment = None,
        line: Segment = None,
        machine: Segment = None,
        rule: Annotated[str | None, Query(max_length=64)] = None,
        from_ms: Annotated[int | None, Query(alias="from", ge=0, le=2**53)] = None,
        to_ms: Annotated[int | None, Query(alias="to", ge=0, le=2**53)] = None,
        before: EpochMs = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AlertOut]:
        """Occurrences, newest first: `state=active` (or `open`: active or acknowledged,
        `acknowledged`, `cleared`), filtered by machine, rule and time; page with `before`
        (the last page's oldest `ts`)."""
        rows = await list_alerts(
            services.db,
            state=state,
            site=site,
            line=line,
            machine=machine,
            rule=rule,
            from_ms=from_ms,
            to_ms=to_ms,
            before_ms=before,
            limit=limit,
        )
        return [AlertOut.of(r) for r in rows]

    @router.post("/alerts/{alert_id}/ack", responses={404: {}, 409: {}})
    async def ack(
        alert_id: uuid.UUID,
        body: AckIn,
        who: Annotated[Principal, Depends(operator)],
    ) -> AlertOut:
        """Acknowledge an active alert with a comment (operator); notifiers are told."""
        cfg = services.config.alerts
        notify = {r.name: list(r.notify) for r in cfg.rules} if cfg is not None else {}
        key = str(alert_id)
        done = services.db.dialect == "postgresql" and await acknowledge(
            services.db,
            key,
            who=who.subject,
            comment=body.comment,
            now_ms=services.now_ms(),
            notify=notify,
        )
        rows = await services.db.fetch(
            "SELECT id, rule, kind, severity, site, line, machine, tag, state, value, detail,"
            " active_ms, acked_ms, acked_by, ack_comment, cleared_ms, cleared_value, found_late"
            " FROM alerts WHERE id = $1",
            alert_id if services.db.dialect == "postgresql" else key,
        )
        if not rows:
            raise HTTPException(404, "no such alert")
        if not done:
            raise HTTPException(409, f"the alert is {rows[0]['state']}, not active")
        rows[0]["id"] = key
        return AlertOut.of(rows[0])

    return router
