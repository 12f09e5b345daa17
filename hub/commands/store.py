"""The `commands` table: one row per command, its answer filled in by the ingest
(hub/storage/statements.py `COMMAND_RESULT`). Plain SQL that both dialects run."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import wire
from hub.sql import Database

__all__ = [
    "COLUMNS",
    "agent_of",
    "get_command",
    "list_commands",
    "record_command",
    "wait_answer",
]

_POLL_S = 0.1

COLUMNS = (
    "id, kind, agent_id, site, line, machine, tag, value, issued_by, issued_at, expires_at,"
    " status, detail, previous, read_back, finished_at, answered_at"
)


async def agent_of(db: Database, site: str, line: str, machine: str) -> str | None:
    """The agent that last reported polling this machine (its status names it), if any."""
    rows = await db.fetch(
        "SELECT agent_id FROM machine_agents WHERE site = $1 AND line = $2 AND machine = $3",
        site,
        line,
        machine,
    )
    return str(rows[0]["agent_id"]) if rows else None


async def record_command(db: Database, command: wire.Command, agent_id: str, site: str,
                         line: str) -> None:  # fmt: skip
    """Write the command to the audit log before it is sent (so its answer has a row)."""
    # A call is kept like a write: the method in `tag`, its arguments in `value`; an
    # acknowledge: the event id in `tag`, the comment in `value`; a config names no machine:
    # `tag` is "config", `value` its version.
    value: object
    if command.kind == "write":
        tag, value = command.tag, command.value
    elif command.kind == "call":
        tag, value = command.method, list(command.args)
    elif command.kind == "acknowledge":
        tag, value = command.event, command.comment
    else:
        assert command.config is not None  # the wire contract requires it
        tag, value = "config", {"version": command.config.version}
    await db.execute(
        "INSERT INTO commands (id, kind, agent_id, site, line, machine, tag, value, issued_by,"
        " issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        command.id,
        command.kind,
        agent_id,
        site,
        line,
        command.machine or "",
        tag,
        json.dumps(value),
        command.issued_by,
        command.issued_at,
        command.expires_at,
    )


async def get_command(db: Database, command_id: str) -> dict[str, Any] | None:
    """One command with its answer so far."""
    rows = await db.fetch(
        f"SELECT {COLUMNS} FROM commands WHERE id = $1",  # noqa: S608 -- a constant
        command_id,
    )
    return _decoded(rows[0]) if rows else None


async def wait_answer(db: Database, command_id: str, wait_s: float) -> dict[str, Any]:
    """A recorded command once its agent answered, or as it is after `wait_s` (`pending`).
    Read from storage: the ingest of whichever hub instance receives the answer stores it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        row = await get_command(db, command_id)
        assert row is not None  # recorded before it was sent; commands are never deleted
        if row["status"] != "pending" or loop.time() >= deadline:
            return row
        await asyncio.sleep(_POLL_S)


async def list_commands(
    db: Database,
    *,
    site: str | None = None,
    line: str | None = None,
    machine: str | None = None,
    before_ms: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Commands newest first, filtered by machine; page with `before_ms` (an `issued_at`)."""
    where: list[str] = []
    args: list[str | int] = []
    for column, value in (("site", site), ("line", line), ("machine", machine)):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if before_ms is not None:
        args.append(before_ms)
        where.append(f"issued_at < ${len(args)}")
    args.append(limit)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = await db.fetch(
        # Only constants and numbered parameters are put together here.
        f"SELECT {COLUMNS} FROM commands {clause}"  # noqa: S608
        f" ORDER BY issued_at DESC, id LIMIT ${len(args)}",
        *args,
    )
    return [_decoded(r) for r in rows]


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("value", "previous", "read_back"):
        out[key] = None if out[key] is None else json.loads(out[key])
    out["status"] = out["status"] or "pending"
    return out
