"""Alert reads for the API: active occurrences, and history with filters and paging."""

from __future__ import annotations

from typing import Any, Literal

from hub.sql import Database

__all__ = ["AlertFilter", "list_alerts"]

AlertFilter = Literal["active", "acknowledged", "cleared", "open"]

_COLUMNS = (
    "id, rule, kind, severity, site, line, machine, tag, state, value, detail, active_ms,"
    " acked_ms, acked_by, ack_comment, cleared_ms, cleared_value, found_late"
)


async def list_alerts(
    db: Database,
    *,
    state: AlertFilter | None,
    site: str | None,
    line: str | None,
    machine: str | None,
    rule: str | None,
    from_ms: int | None,
    to_ms: int | None,
    before_ms: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Occurrences newest first; `open` = active or acknowledged; page with `before_ms`."""
    where = ["active_ms < $1"]
    args: list[Any] = [before_ms if before_ms is not None else 2**62]
    if state == "open":
        where.append("state <> 'cleared'")
    elif state is not None:
        args.append(state)
        where.append(f"state = ${len(args)}")
    for column, value in (("site", site), ("line", line), ("machine", machine), ("rule", rule)):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if from_ms is not None:
        args.append(from_ms)
        where.append(f"active_ms >= ${len(args)}")
    if to_ms is not None:
        args.append(to_ms)
        where.append(f"active_ms < ${len(args)}")
    args.append(limit)
    sql = (
        f"SELECT {_COLUMNS} FROM alerts WHERE {' AND '.join(where)}"  # noqa: S608 -- constants
        f" ORDER BY active_ms DESC, id LIMIT ${len(args)}"
    )
    rows = await db.fetch(sql, *args)
    for r in rows:
        r["id"] = str(r["id"])
        r["found_late"] = bool(r["found_late"])
    return rows
