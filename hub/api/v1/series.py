"""`/series` and downsampled history `/series/{id}/readings`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse

import wire
from hub.api.v1.deps import requires
from hub.api.v1.paging import After, Limit, decode_cursor, next_page
from hub.api.v1.schemas import HistoryOut, SeriesOut
from hub.api.v1.services import ApiServices
from hub.auth import Role
from hub.query import ReadQueries, SeriesInfo, plan_history
from hub.query.reads import QUALITY_NAMES, wire_value

__all__ = ["series_router"]

DAY_MS = 86_400_000
SeriesId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Filter = Annotated[str | None, Query(pattern=f"^{wire.SEGMENT_PATTERN}$")]


def _series_out(s: SeriesInfo) -> SeriesOut:
    # unit, description and limits come from the machine's retained meta message (docs/wire.md).
    return SeriesOut(
        id=s.id,
        site=s.site,
        line=s.line,
        machine=s.machine,
        tag=s.tag,
        unit=s.unit,
        description=s.description,
        limit_low=s.limit_low,
        limit_high=s.limit_high,
        writable=bool(s.writable),
        write_min=s.write_min,
        write_max=s.write_max,
    )


async def history(
    queries: ReadQueries, info: SeriesInfo, start: int, end: int, max_points: int
) -> dict[str, Any]:
    """Raw readings when few, else merged rollup buckets; never more than `max_points`."""
    # The bucket answer first: its counts bound the readings in the range from above, so one
    # query decides raw vs buckets and, for the common long range, is the answer.
    plan = plan_history(start, end, max_points, max_points + 1)
    first = start - start % plan.width_ms
    buckets = await queries.buckets(info.id, plan.source, plan.width_ms, first, end)
    out: dict[str, Any] = {
        "series": _series_out(info).model_dump(),
        "from_ms": start,
        "to_ms": end,
        "resolution": "raw",
        "bucket_ms": None,
        "truncated": False,
        "raw": [],
        "buckets": [],
    }
    if sum(b.count for b in buckets) <= max_points:
        # Rollups count numeric readings only; text series are capped here instead.
        rows = await queries.raw(info.id, start, end, max_points + 1)
        out["truncated"] = len(rows) > max_points
        out["raw"] = [
            {
                "ts": r.ts,
                "v": wire_value(r.value, r.value_text),
                "q": QUALITY_NAMES[r.quality] if 0 <= r.quality < 3 else "bad",
            }
            for r in rows[:max_points]
        ]
        return out
    out["resolution"] = plan.source
    out["bucket_ms"] = plan.width_ms
    out["buckets"] = [
        {
            "ts": b.bucket,
            "min": b.min,
            "max": b.max,
            "avg": b.avg,
            "count": b.count,
            "last": b.last_value,
        }
        for b in buckets
    ]
    return out


def series_router(services: ApiServices) -> APIRouter:
    """Series routes (viewer)."""
    router = APIRouter(
        prefix="/series",
        tags=["series"],
        dependencies=[Depends(requires(services, Role.VIEWER))],
        responses={401: {}, 403: {}, 429: {}},
    )

    @router.get("", responses={422: {}})
    async def list_series(
        request: Request,
        response: Response,
        *,
        site: Filter = None,
        machine: Filter = None,
        limit: Limit = None,
        after: After = None,
    ) -> list[SeriesOut]:
        """Every series (optionally of one site and/or machine name), with its id, by (site,
        line, machine, tag); page with `limit` and `after` (the `X-Next-Cursor` header)."""
        start = None
        if after is not None:
            key = decode_cursor("series", after, (str, str, str, str))
            start = (str(key[0]), str(key[1]), str(key[2]), str(key[3]))
        rows = await services.queries.series(
            site, machine, after=start, limit=None if limit is None else limit + 1
        )
        if limit is not None and len(rows) > limit:
            last = rows[limit - 1]
            next_page(request, response, "series", (last.site, last.line, last.machine, last.tag))
        return [_series_out(s) for s in rows[:limit]]

    @router.get("/{series_id}", responses={404: {}})
    async def one_series(series_id: SeriesId) -> SeriesOut:
        """One series by id."""
        info = await services.queries.series_by_id(series_id)
        if info is None:
            raise HTTPException(404, "no such series")
        return _series_out(info)

    # Built as plain JSON (documented by HistoryOut): thousands of buckets per request would
    # otherwise be validated twice on the way out.
    @router.get("/{series_id}/readings", response_model=HistoryOut, responses={404: {}, 422: {}})
    async def readings(
        series_id: SeriesId,
        from_ms: Annotated[int | None, Query(alias="from", ge=0, le=2**53)] = None,
        to_ms: Annotated[int | None, Query(alias="to", ge=0, le=2**53)] = None,
        max_points: Annotated[int, Query(ge=1, le=20_000)] = 1000,
    ) -> JSONResponse:
        """History in [from, to) (epoch ms; default the last 24 h), at most max_points."""
        end = to_ms if to_ms is not None else services.now_ms()
        start = from_ms if from_ms is not None else max(0, end - DAY_MS)
        if start >= end:
            raise HTTPException(422, "from must be before to")
        info = await services.queries.series_by_id(series_id)
        if info is None:
            raise HTTPException(404, "no such series")
        return JSONResponse(await history(services.queries, info, start, end, max_points))

    return router
