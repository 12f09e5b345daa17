"""Reading a table that concurrent transactions append to, in an order no later commit can
precede, without any lock on the writers (the Kafka outbox, the alert feed).

Ids handed out by a sequence are not commit order: a transaction that took id 7 may commit
after the one that took id 8, and a reader that has moved past 8 would never see 7. So each row
records its writer's transaction id (`xid8`, the column default `pg_current_xact_id()`) and a
reader takes rows in (xid, id) order, only of transactions below the oldest one still running
(`pg_snapshot_xmin(pg_current_snapshot())`): every transaction there has ended, and any
transaction that ends later has a greater xid, so no row can ever commit behind the reader's
position. The cost is that a long transaction holds readers back until it ends, never that a
row is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

__all__ = ["START", "Position", "delete_through", "fetch_after", "fetch_after_sql"]

# A reader's position: (xid, id) of the last row read; START before the first.
Position = tuple[int, int]
START: Position = (0, 0)


def fetch_after_sql(table: str, columns: str, *, where: str = "", nargs: int = 0) -> str:
    """The statement `fetch_after` runs: `where`'s parameters are $1 … $nargs, then the
    position's xid and id and the limit."""
    cond = f"({where}) AND " if where else ""
    return (
        f"SELECT {columns}, xid::text::bigint FROM {table}"  # noqa: S608 -- constants only
        f" WHERE {cond}(xid, id) > (${nargs + 1}::text::xid8, ${nargs + 2})"
        " AND xid < pg_snapshot_xmin(pg_current_snapshot())"
        # Qualified: a bare `xid` would name the output column (the bigint), and PostgreSQL
        # would sort every row past the position instead of walking the (…, xid, id) index.
        f" ORDER BY {table}.xid, {table}.id LIMIT ${nargs + 3}"
    )


async def fetch_after(
    conn: asyncpg.Connection,
    table: str,
    columns: str,
    after: Position,
    limit: int,
    *,
    where: str = "",
    args: Sequence[Any] = (),
) -> list[asyncpg.Record]:
    """`columns` and then the row's xid (as bigint) of the rows of `table` past `after` (and
    matching `where`, whose parameters are `args`: $1 …), in (xid, id) order, of transactions
    that ended before every transaction still running began."""
    sql = fetch_after_sql(table, columns, where=where, nargs=len(args))
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args, str(after[0]), after[1], limit)
    return rows


async def delete_through(
    conn: asyncpg.Connection,
    table: str,
    upto: Position,
    *,
    where: str = "",
    args: Sequence[Any] = (),
) -> None:
    """Delete the rows of `table` up to and including position `upto` (and matching `where`)."""
    cond = f"({where}) AND " if where else ""
    n = len(args)
    await conn.execute(
        f"DELETE FROM {table} WHERE {cond}(xid, id) <= (${n + 1}::text::xid8, ${n + 2})",  # noqa: S608
        *args,
        str(upto[0]),
        upto[1],
    )
