"""`/alerts`: occurrences (viewer) and acknowledging one (operator)."""

# No `from __future__ import annotations`: FastAPI must resolve `Depends(operator)`, a closure
# variable, when it reads the signature (as in auth_routes.py).

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Response
from fastapi import Path as Path_

import wire
from hub.alerts.manage import (
    RuleConflict,
    api_rules,
    check_rule,
    delete_rule,
    delete_shelf,
    list_shelves,
    put_rule,
    shelve,
)
from hub.alerts.rules import parse_duration_ms
from hub.alerts.sqlite_store import SqliteAlertStore
from hub.alerts.store import acknowledge
from hub.api.v1.deps import requires
from hub.api.v1.schemas import AckIn, AlertOut, RuleOut, ShelfIn, ShelfOut
from hub.api.v1.services import ApiServices
from hub.auth import Principal, Role
from hub.query.alerts import AlertFilter, list_alerts

__all__ = ["alert_rules_router", "alert_shelves_router", "alerts_router"]

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
        rule: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = None,
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
        if services.db.dialect == "postgresql":
            done = await acknowledge(
                services.db,
                key,
                who=who.subject,
                comment=body.comment,
                now_ms=services.now_ms(),
                notify=notify,
            )
        else:  # SQLite (the demo): one transaction, so a connection of its own
            async with SqliteAlertStore.from_url(services.config.storage) as store:
                done = await store.acknowledge(
                    key, who=who.subject, comment=body.comment, now_ms=services.now_ms(),
                    notify=notify,
                )  # fmt: skip
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


def alert_rules_router(services: ApiServices) -> APIRouter:
    """Rule management (admin) (docs/alerts.md, "API")."""
    router = APIRouter(tags=["alerts"], responses={401: {}, 403: {}, 429: {}})
    viewer = requires(services, Role.VIEWER)
    admin = requires(services, Role.ADMIN)

    @router.get("/alerts/rules", dependencies=[Depends(viewer)])
    async def rules() -> list[RuleOut]:
        """Every rule: the hub config's (`source: config`, change them there) and the API's."""
        cfg = services.config.alerts
        out = [RuleOut.of(r, "config") for r in (cfg.rules if cfg is not None else ())]
        out += [RuleOut.of(r, "api", who, ms) for r, who, ms in await api_rules(services.db)]
        return out

    @router.put("/alerts/rules/{name}", responses={409: {}, 422: {}})
    async def set_rule(
        name: Annotated[str, Path_(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")],
        body: Annotated[dict[str, Any], Body()],
        who: Annotated[Principal, Depends(admin)],
    ) -> RuleOut:
        """Create or replace a rule (admin); the body is a rule as in the config's
        `alerts.rules` (its `name` may be left out). The evaluator applies it within seconds."""
        if body.get("name", name) != name:
            raise HTTPException(422, "name: the body names another rule than the path")
        try:
            rule = check_rule(services.config.alerts, {**body, "name": name})
        except RuleConflict as exc:
            raise HTTPException(409, str(exc)) from exc
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        now = services.now_ms()
        await put_rule(services.db, rule, who.subject, now)
        return RuleOut.of(rule, "api", who.subject, now)

    @router.delete(
        "/alerts/rules/{name}", status_code=204, responses={404: {}},
        dependencies=[Depends(admin)],
    )  # fmt: skip
    async def remove_rule(name: str) -> Response:
        """Delete an API rule (admin); its active alerts clear when the evaluator reloads."""
        if not await delete_rule(services.db, name):
            raise HTTPException(404, "no API rule of that name (config rules are in the config)")
        return Response(status_code=204)

    return router


def alert_shelves_router(services: ApiServices) -> APIRouter:
    """Shelving: silence rules or machines for a maintenance window (operator)."""
    router = APIRouter(tags=["alerts"], responses={401: {}, 403: {}, 429: {}})
    viewer = requires(services, Role.VIEWER)
    operator = requires(services, Role.OPERATOR)

    @router.get("/alerts/shelves", dependencies=[Depends(viewer)])
    async def shelves() -> list[ShelfOut]:
        """Shelves in force: silenced rules and machines, until when and why."""
        return [ShelfOut.of(s) for s in await list_shelves(services.db, services.now_ms())]

    @router.post("/alerts/shelves", status_code=201, responses={422: {}})
    async def add_shelf(body: ShelfIn, who: Annotated[Principal, Depends(operator)]) -> ShelfOut:
        """Silence a rule and/or machines (operator) for a maintenance window: alerts are still
        recorded, nobody is notified. Give `for` (`2h`) or `until` (epoch ms)."""
        now = services.now_ms()
        if (body.for_ is None) == (body.until is None):
            raise HTTPException(422, "give either `for` (e.g. 2h) or `until` (epoch ms)")
        try:
            until = body.until if body.until is not None else now + parse_duration_ms(body.for_)
        except ValueError as exc:
            raise HTTPException(422, f"for: {exc}") from exc
        if until <= now:
            raise HTTPException(422, "until: must be in the future")
        shelf = await shelve(
            services.db, rule=body.rule, site=body.site, line=body.line, machine=body.machine,
            until_ms=until, reason=body.reason, who=who.subject, now_ms=now,
        )  # fmt: skip
        return ShelfOut.of(shelf)

    @router.delete(
        "/alerts/shelves/{shelf_id}", status_code=204, responses={404: {}},
        dependencies=[Depends(operator)],
    )  # fmt: skip
    async def end_shelf(shelf_id: Annotated[int, Path_(ge=1, le=2**62)]) -> Response:
        """End a shelf early (operator)."""
        if not await delete_shelf(services.db, shelf_id):
            raise HTTPException(404, "no such shelf")
        return Response(status_code=204)

    return router
