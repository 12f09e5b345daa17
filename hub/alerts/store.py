"""Alerts in PostgreSQL: occurrences, transitions, the notification queue, the checkpoint.

Recording is idempotent by construction: an occurrence's id and its (id, state) transition are
primary keys, and notifications are queued only by the statement that actually inserted the
transition, so replaying the feed after a crash neither records nor notifies anything twice.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.alerts.engine import Transition
from hub.sql import Database
from hub.storage.snapshot_order import START, Position, delete_through

__all__ = [
    "CHANGES_CHANNEL",
    "Checkpoint",
    "Pending",
    "acknowledge",
    "claim_notifications",
    "delivered",
    "load_checkpoint",
    "notification_body",
    "record",
    "retry_later",
    "save_checkpoint",
]

# Every recorded transition is announced here at commit (NOTIFY), so each hub instance can push
# it to its WebSocket clients whichever instance evaluated or acknowledged (hub/alerts/live.py).
CHANGES_CHANNEL = "millstream_alert_changes"

_OPEN = """
INSERT INTO alerts (id, rule, kind, severity, site, line, machine, tag, state, value, detail,
                    active_ms, found_late, recorded_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10, $11, $12, $13)
ON CONFLICT (id) DO NOTHING
"""

_CLEAR = """
UPDATE alerts SET state = 'cleared', cleared_ms = $2, cleared_value = $3
WHERE id = $1 AND state <> 'cleared'
"""

_TRANSITION = """
INSERT INTO alert_transitions (alert_id, state, ts, value, by_whom, comment, recorded_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (alert_id, state) DO NOTHING
RETURNING alert_id
"""

_QUEUE = """
INSERT INTO alert_notifications (alert_id, state, notifier)
SELECT $1, $2, unnest($3::text[])
ON CONFLICT (alert_id, state, notifier) DO NOTHING
"""


def _finite(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else v


async def record(
    conn: asyncpg.Connection,
    transitions: Sequence[Transition],
    now_ms: int,
    silenced: Callable[[Transition], bool] = lambda _t: False,
) -> int:
    """Store transitions in one transaction and queue their notifications; returns how many
    were new. Found-late occurrences and `silenced` ones (shelved) notify nobody."""
    new = 0
    async with conn.transaction():
        for t in transitions:
            key, rule = t.key, t.rule
            value = _finite(t.value)
            if t.state == "active":
                await conn.execute(
                    _OPEN, t.alert_id, rule.name, rule.kind, rule.severity, *key, value,
                    t.detail, t.ts, t.found_late, now_ms,
                )  # fmt: skip
            else:
                await conn.execute(_CLEAR, t.alert_id, t.ts, value)
            inserted = await conn.fetchval(
                _TRANSITION, t.alert_id, t.state, t.ts, value, "millstream", t.detail, now_ms
            )
            if inserted is None:
                continue  # recorded before (a replay from the checkpoint)
            new += 1
            change = {
                "id": t.alert_id, "rule": rule.name, "state": t.state, "severity": rule.severity,
                "site": key.site, "line": key.line, "machine": key.machine, "tag": key.tag,
                "value": value, "ts": t.ts, "detail": t.detail[:200], "found_late": t.found_late,
            }  # fmt: skip
            await conn.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, json.dumps(change))
            if rule.notify and not t.found_late and not silenced(t):
                await conn.execute(_QUEUE, t.alert_id, t.state, list(rule.notify))
    return new


_ACK = """
WITH a AS (
    UPDATE alerts SET state = 'acknowledged', acked_ms = $2, acked_by = $3, ack_comment = $4
    WHERE id = $1 AND state = 'active'
    RETURNING id, rule, severity, site, line, machine, tag, value, detail, found_late
), t AS (
    INSERT INTO alert_transitions (alert_id, state, ts, value, by_whom, comment, recorded_ms)
    SELECT id, 'acknowledged', $2, value, $3, $4, $2 FROM a
    RETURNING alert_id
), n AS (
    INSERT INTO alert_notifications (alert_id, state, notifier)
    SELECT a.id, 'acknowledged', x FROM a, jsonb_array_elements_text($5::jsonb -> a.rule) AS x
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM a) AS acked, (SELECT count(*) FROM n) AS queued,
       (SELECT count(pg_notify($6, json_build_object(
            'id', a.id, 'rule', a.rule, 'state', 'acknowledged', 'severity', a.severity,
            'site', a.site, 'line', a.line, 'machine', a.machine, 'tag', a.tag,
            'value', a.value, 'ts', $2::bigint, 'detail', $4::text, 'found_late', a.found_late,
            'by', $3::text)::text)) FROM a) AS told
"""


async def acknowledge(
    db: Database,
    alert: str,
    *,
    who: str,
    comment: str,
    now_ms: int,
    notify: Mapping[str, Sequence[str]],
) -> bool:
    """Acknowledge an active occurrence and queue its notifications (one statement, so one
    transaction); False if it is not active. `notify`: rule name → notifier names."""
    rows = await db.fetch(_ACK, alert, now_ms, who, comment, json.dumps(notify), CHANGES_CHANNEL)
    return bool(rows and rows[0]["acked"])


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The feed position last evaluated ((xid, id) of its row) and the engine's state then."""

    cursor: Position
    state: dict[str, Any]


async def load_checkpoint(conn: asyncpg.Connection) -> Checkpoint:
    """The evaluator's checkpoint (the feed's start and no state before the first)."""
    row = await conn.fetchrow(
        "SELECT cursor_xid::text::bigint AS xid, cursor, state FROM alert_checkpoint WHERE id = 1"
    )
    if row is None:
        return Checkpoint(START, {})
    position = (int(row["xid"]), int(row["cursor"]))
    return Checkpoint(position, json.loads(zlib.decompress(row["state"])))


async def save_checkpoint(conn: asyncpg.Connection, cp: Checkpoint, now_ms: int) -> None:
    """Store the checkpoint and delete the feed rows it covers, in one transaction."""
    blob = zlib.compress(json.dumps(cp.state, separators=(",", ":")).encode(), 1)
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO alert_checkpoint (id, cursor_xid, cursor, state, saved_at)"
            " VALUES (1, $1::text::xid8, $2, $3, $4)"
            " ON CONFLICT (id) DO UPDATE SET cursor_xid = excluded.cursor_xid,"
            " cursor = excluded.cursor, state = excluded.state, saved_at = excluded.saved_at",
            str(cp.cursor[0]),
            cp.cursor[1],
            blob,
            now_ms,
        )
        await delete_through(conn, "alert_feed", cp.cursor)


@dataclass(frozen=True, slots=True)
class Pending:
    """A notification to deliver, with the occurrence and transition it tells about."""

    id: int
    notifier: str
    attempts: int
    alert: dict[str, Any]


_CLAIM = """
SELECT n.id, n.notifier, n.attempts, a.id AS alert_id, a.rule, a.kind, a.severity, a.site,
       a.line, a.machine, a.tag, n.state, a.detail, a.found_late, a.active_ms,
       t.ts, t.value, t.by_whom, t.comment
FROM alert_notifications n
JOIN alerts a ON a.id = n.alert_id
JOIN alert_transitions t ON t.alert_id = n.alert_id AND t.state = n.state
WHERE n.next_ms <= $1
ORDER BY n.id
LIMIT $2
"""


async def claim_notifications(conn: asyncpg.Connection, now_ms: int, limit: int) -> list[Pending]:
    """Notifications due now, oldest first (one deliverer runs at a time: no row locks)."""
    rows = await conn.fetch(_CLAIM, now_ms, limit)
    return [Pending(r["id"], r["notifier"], r["attempts"], dict(r)) for r in rows]


def notification_body(p: Pending) -> dict[str, Any]:
    """What every notifier sends about a transition (docs/alerts.md, "Notifications")."""
    a = p.alert
    alert = str(a["alert_id"])
    return {
        "id": alert,
        "rule": a["rule"],
        "kind": a["kind"],
        "state": a["state"],
        "severity": a["severity"],
        "site": a["site"],
        "line": a["line"],
        "machine": a["machine"],
        "tag": a["tag"],
        "value": a["value"],
        "ts": a["ts"],
        "detail": a["detail"],
        "active_ts": a["active_ms"],
        "by": a["by_whom"],
        "comment": a["comment"] if a["state"] == "acknowledged" else None,
        # The same transition always carries the same key: receivers drop repeats by it.
        "idempotency_key": f"{alert}:{a['state']}",
    }


async def delivered(conn: asyncpg.Connection, ids: Sequence[int]) -> None:
    """The notifier has these: forget them."""
    await conn.execute("DELETE FROM alert_notifications WHERE id = ANY($1::bigint[])", list(ids))


async def retry_later(conn: asyncpg.Connection, nid: int, next_ms: int, error: str) -> None:
    """Delivery failed: try again at `next_ms`."""
    await conn.execute(
        "UPDATE alert_notifications SET attempts = attempts + 1, next_ms = $2, last_error = $3"
        " WHERE id = $1",
        nid,
        next_ms,
        error[:500],
    )
