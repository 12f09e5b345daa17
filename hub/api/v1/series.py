"""`/series` and downsampled history `/series/{id}/readings`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from hub.api.v1.deps import requires
from hub.api.v1.schemas import BucketOut, HistoryOut, RawPointOut, SeriesOut
from hub.api.v1.services import ApiServices
from hub.auth import Role
from hub.query import ReadQueries, SeriesInfo, merge_buckets, plan_history
from hub.query.reads import QUALITY_NAMES, wire_value

__all__ = ["series_router"]

DAY_MS = 86_400_000
SeriesId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Filter = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _series_out(s: SeriesInfo) -> SeriesOut:
    # Units are not part of wire v1; they appear here once profiles/devices report them.
    return SeriesOut(id=s.id, site=s.site, line=s.line, machine=s.machine, tag=s.tag)


async def history(
    queries: ReadQueries, info: SeriesInfo, start: int, end: int, max_points: int
) -> HistoryOut:
    """Raw readings when few, else merged rollup buckets; never more than `max_points`."""
    bound = await queries.readings_upper_bound(info.id, start, end)
    plan = plan_history(start, end, max_points, bound)
    out = HistoryOut(
        series=_series_out(info), from_ms=start, to_ms=end, resolution="raw", bucket_ms=None
    )
    if plan.kind == "raw":
        # The bound counts numeric readings only; text series are capped here instead.
        rows = await queries.raw(info.id, start, end, max_points + 1)
        out.truncated = len(rows) > max_points
        out.raw = [
            RawPointOut(
                ts=r.ts,
                v=wire_value(r.value, r.value_text),
                q=QUALITY_NAMES[r.quality] if 0 <= r.quality < 3 else "bad",
            )
            for r in rows[:max_points]
        ]
        return out
    first = start - start % plan.width_ms
    buckets = await queries.rollups(info.id, plan.source, first, end)
    out.resolution = plan.source
    out.bucket_ms = plan.width_ms
    out.buckets = [
        BucketOut(ts=b.bucket, min=b.min, max=b.max, avg=b.avg, count=b.count, last=b.last_value)
        for b in merge_buckets(buckets, plan.width_ms)
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

    @router.get("")
    async def list_series(site: Filter = None, machine: Filter = None) -> list[SeriesOut]:
        """Every series (optionally of one site and/or machine name), with its id."""
        return [_series_out(s) for s in await services.queries.series(site, machine)]

    @router.get("/{series_id}", responses={404: {}})
    async def one_series(series_id: SeriesId) -> SeriesOut:
        """One series by id."""
        info = await services.queries.series_by_id(series_id)
        if info is None:
            raise HTTPException(404, "no such series")
        return _series_out(info)

    @router.get("/{series_id}/readings", responses={404: {}, 422: {}})
    async def readings(
        series_id: SeriesId,
        from_ms: Annotated[int | None, Query(alias="from", ge=0, le=2**53)] = None,
        to_ms: Annotated[int | None, Query(alias="to", ge=0, le=2**53)] = None,
        max_points: Annotated[int, Query(ge=1, le=20_000)] = 1000,
    ) -> HistoryOut:
        """History in [from, to) (epoch ms; default the last 24 h), at most max_points."""
        end = to_ms if to_ms is not None else services.now_ms()
        start = from_ms if from_ms is not None else max(0, end - DAY_MS)
        if start >= end:
            raise HTTPException(422, "from must be before to")
        info = await services.queries.series_by_id(series_id)
        if info is None:
            raise HTTPException(404, "no such series")
        return await history(services.queries, info, start, end, max_points)

    return router
