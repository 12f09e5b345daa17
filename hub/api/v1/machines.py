"""`/machines`, a machine's latest values and its completeness per minute."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response

import wire
from hub.api.v1.deps import requires
from hub.api.v1.paging import After, Limit, decode_cursor, next_page
from hub.api.v1.schemas import CompletenessOut, LatestOut, MachineOut, MinuteOut, OutageOut
from hub.api.v1.services import ApiServices
from hub.auth import Role
from hub.query import completeness, median_rate

__all__ = ["machines_router"]

Segment = Annotated[str, Path(pattern=f"^{wire.SEGMENT_PATTERN}$")]
EpochMs = Annotated[int | None, Query(ge=0, le=2**53)]
MAX_COMPLETENESS_MS = 24 * 3_600_000


def machines_router(services: ApiServices) -> APIRouter:
    """Machine-level routes (viewer)."""
    router = APIRouter(
        tags=["machines"],
        dependencies=[Depends(requires(services, Role.VIEWER))],
        responses={401: {}, 403: {}, 429: {}},
    )

    @router.get("/machines", responses={422: {}})
    async def machines(
        request: Request, response: Response, limit: Limit = None, after: After = None
    ) -> list[MachineOut]:
        """Every machine with its state and why, its agent, and when it was last seen (ms), by
        (site, line, machine); page with `limit` and `after` (the `X-Next-Cursor` header)."""
        start = None
        if after is not None:
            site, line, machine = decode_cursor("machines", after, (str, str, str))
            start = (str(site), str(line), str(machine))
        queries, now = services.queries, services.now_ms()
        if limit is None:
            return [MachineOut(**m) for m in await queries.machines(now, start)]
        keys = await queries.machine_keys(start, limit + 1)
        if not keys:
            return []
        page = await queries.machines(now, start, through=keys[:limit][-1])
        next_page(request, response, "machines", keys[limit - 1] if len(keys) > limit else None)
        return [MachineOut(**m) for m in page]

    @router.get("/machines/{site}/{line}/{machine}/latest")
    async def latest(site: Segment, line: Segment, machine: Segment) -> list[LatestOut]:
        """The newest stored value of every tag of one machine."""
        return [LatestOut(**r) for r in await services.latest(site, line, machine)]

    @router.get("/machines/{site}/{line}/{machine}/completeness", responses={422: {}})
    async def machine_completeness(
        site: Segment,
        line: Segment,
        machine: Segment,
        from_ms: Annotated[int | None, Query(alias="from", ge=0, le=2**53)] = None,
        to_ms: Annotated[int | None, Query(alias="to", ge=0, le=2**53)] = None,
    ) -> CompletenessOut:
        """Readings stored vs expected per minute (default: the last hour, at most 24 h)."""
        end = to_ms if to_ms is not None else services.now_ms()
        start = from_ms if from_ms is not None else end - 3_600_000
        if not 0 < end - start <= MAX_COMPLETENESS_MS:
            raise HTTPException(422, "need from < to and a window of at most 24 h")
        counts = await services.queries.minute_counts(site, line, machine, start, end)
        produced = await services.queries.produced_counts(site, line, machine, start, end)
        schedule = await services.queries.scheduled_per_minute(site, line, machine)
        outages = await services.queries.outages(site, line, machine, start, end)
        minutes = completeness(
            counts, start, end, produced, scheduled_per_minute=schedule, outages=outages
        )
        agents = await services.queries.agents()
        return CompletenessOut(
            machine=f"{site}/{line}/{machine}",
            from_ms=start,
            to_ms=end,
            # The median estimate; minutes the agent reported carry their own `expected`.
            expected_per_minute=median_rate(counts),
            scheduled_per_minute=schedule,
            minutes=[
                MinuteOut(
                    minute=m.minute,
                    stored=m.stored,
                    expected=m.expected,
                    ratio=m.ratio,
                    reason=m.reason,
                )
                for m in minutes
            ],
            outages=[
                OutageOut(kind=o.kind, reason=o.reason, from_ms=o.start_ms, to_ms=o.end_ms)
                for o in outages
            ],
            agents_dropped={a["agent_id"]: a["dropped"] or 0 for a in agents},
        )

    return router
