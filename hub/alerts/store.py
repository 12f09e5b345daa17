"""Where the evaluator keeps alerts: occurrences, transitions, the notification queue, the
checkpoint, and the feed it reads — `AlertStore`, the one seam it uses for both engines:
`PostgresAlertStore` here, `hub.alerts.sqlite_store.SqliteAlertStore` for the demo.

Recording is idempotent by construction: an occurrence's id and its (id, state) transition are
primary keys, and notifications are queued only by the statement that actually inserted the
transition, so replaying the feed after a crash neither records nor notifies anything twice.
"""

from __future__ import annotations

import asyncio
import json
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from hub.alerts.engine import Transition
from hub.alerts.feed import FEED_CHANNEL, FeedRow, fetch_feed
from hub.bridge.kafka.outbox import write_alerts
from hub.sql import Database
from hub.sql.singleton import PG_ERRORS, lead
from hub.storage.snapshot_order import START, Position, delete_through

__all__ = [
    "CHANGES_CHANNEL",
    "CLAIM",
    "EVALUATOR_LOCK",
    "HOLD_BACK",
    "NOTIFY_CHANNEL",
    "RETRY",
    "TRANSITION",
    "AlertStore",
    "Checkpoint",
    "Pending",
    "PostgresAlertStore",
    "Step",
    "acknowledge",
    "claim_notifications",
    "delivered",
    "load_checkpoint",
    "notification_body",
    "pack_state",
    "record",
    "retry_later",
    "save_checkpoint",
    "steps",
    "unpack_state",
]

# Every recorded transition is announced here at commit (NOTIFY), so each hub instance can push
# it to its WebSocket clients whichever instance evaluated or acknowledged (hub/alerts/live.py).
CHANGES_CHANNEL = "millstream_alert_changes"
NOTIFY_CHANNEL = "millstream_alert_notify"  # wakes the deliverer when notifications are queued
# Advisory lock ids: "ms" + purpose. 0x6D73_000B until the Sparkplug host took it too, and on a
# hub with both one of them stood by for the other for ever.
EVALUATOR_LOCK = 0x6D73_000C

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

TRANSITION = """
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


@dataclass(frozen=True, slots=True)
class Step:
    """What recording one transition takes, whichever database (statements in PostgreSQL's
    numbered-parameter form)."""

    sql: str  # opens or clears the occurrence
    args: tuple[Any, ...]
    transition: tuple[Any, ...]  # `TRANSITION`'s parameters
    change: dict[str, Any]  # announced to live clients once recorded
    notify: list[str]  # notifiers to queue once recorded


def steps(
    transitions: Sequence[Transition], now_ms: int, silenced: Callable[[Transition], bool]
) -> list[Step]:
    """Found-late occurrences and `silenced` ones (shelved) notify nobody (pure)."""
    out = []
    for t in transitions:
        key, rule = t.key, t.rule
        value = _finite(t.value)
        args: tuple[Any, ...]
        if t.state == "active":
            sql, args = _OPEN, (
                t.alert_id, rule.name, rule.kind, rule.severity, *key, value, t.detail, t.ts,
                t.found_late, now_ms,
            )  # fmt: skip
        else:
            sql, args = _CLEAR, (t.alert_id, t.ts, value)
        change = {
            "id": t.alert_id, "rule": rule.name, "state": t.state, "severity": rule.severity,
            "site": key.site, "line": key.line, "machine": key.machine, "tag": key.tag,
            "value": value, "ts": t.ts, "detail": t.detail[:200], "found_late": t.found_late,
        }  # fmt: skip
        notify = list(rule.notify) if rule.notify and not t.found_late and not silenced(t) else []
        transition = (t.alert_id, t.state, t.ts, value, "millstream", t.detail, now_ms)
        out.append(Step(sql, args, transition, change, notify))
    return out


async def record(
    conn: asyncpg.Connection,
    transitions: Sequence[Transition],
    now_ms: int,
    silenced: Callable[[Transition], bool] = lambda _t: False,
) -> list[dict[str, Any]]:
    """Store transitions in one transaction and queue their notifications; returns the changes
    that were new (each also announced on `CHANGES_CHANNEL`)."""
    new = []
    async with conn.transaction():
        for step in steps(transitions, now_ms, silenced):
            await conn.execute(step.sql, *step.args)
            if await conn.fetchval(TRANSITION, *step.transition) is None:
                continue  # recorded before (a replay from the checkpoint)
            new.append(step.change)
            await conn.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, json.dumps(step.change))
            if step.notify:
                await conn.execute(_QUEUE, *step.transition[:2], step.notify)
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
    return Checkpoint((int(row["xid"]), int(row["cursor"])), unpack_state(row["state"]))


def pack_state(state: dict[str, Any]) -> bytes:
    """The engine's state as stored in a checkpoint (zlib-compressed JSON)."""
    return zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 1)


def unpack_state(blob: bytes) -> dict[str, Any]:
    """The engine's state from a stored checkpoint."""
    state: dict[str, Any] = json.loads(zlib.decompress(blob))
    return state


async def save_checkpoint(conn: asyncpg.Connection, cp: Checkpoint, now_ms: int) -> None:
    """Store the checkpoint and delete the feed rows it covers, in one transaction."""
    blob = pack_state(cp.state)
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


CLAIM = """
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
    rows = await conn.fetch(CLAIM, now_ms, limit)
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


RETRY = (
    "UPDATE alert_notifications SET attempts = attempts + 1, next_ms = $2, last_error = $3"
    " WHERE id = $1"
)
# The notifier's later notifications wait too: an `active` never arrives after its `cleared`.
HOLD_BACK = "UPDATE alert_notifications SET next_ms = $2 WHERE notifier = $1 AND next_ms < $2"


async def retry_later(
    conn: asyncpg.Connection, notifier: str, nid: int, next_ms: int, error: str
) -> None:
    """Delivery of `nid` failed: try it, and every later one of its notifier, at `next_ms`."""
    async with conn.transaction():
        await conn.execute(RETRY, nid, next_ms, error[:500])
        await conn.execute(HOLD_BACK, notifier, next_ms)


class AlertStore(Protocol):
    """What the evaluator needs of its database, one per task (evaluation, delivery), each on a
    connection of its own; failures raise `StorageUnavailable` or the driver's errors
    (`hub.sql.singleton.PG_ERRORS`), and end the evaluator's session."""

    # How long the evaluator waits for new feed rows or notifications when nobody wakes it.
    poll_s: float

    async def lead(self, stop: asyncio.Event, standby: Callable[[], None]) -> bool:
        """Become the one evaluator (True), calling `standby` while another instance is;
        False when `stop` is set first."""
        ...

    async def listen(self, feed: asyncio.Event | None, queued: asyncio.Event | None) -> None:
        """Set `feed` when feed rows commit, `queued` when notifications are queued (if the
        database can tell; otherwise the evaluator polls every `poll_s`)."""
        ...

    async def load_checkpoint(self) -> Checkpoint:
        """The checkpoint (the feed's start and no state before the first)."""
        ...

    async def save_checkpoint(self, cp: Checkpoint, now_ms: int) -> None:
        """Store the checkpoint and delete the feed rows it covers, in one transaction."""
        ...

    async def fetch_feed(self, after: Position, limit: int) -> list[FeedRow]:
        """Committed feed rows past `after`, in an order no later commit can precede."""
        ...

    async def record(
        self,
        transitions: Sequence[Transition],
        now_ms: int,
        silenced: Callable[[Transition], bool],
    ) -> list[dict[str, Any]]:
        """Store transitions and queue their notifications in one transaction; the changes
        that were new."""
        ...

    async def claim(self, now_ms: int, limit: int) -> list[Pending]:
        """Notifications due now, oldest first."""
        ...

    async def delivered(self, ids: Sequence[int]) -> None:
        """The notifier has these: forget them."""
        ...

    async def retry_later(self, notifier: str, nid: int, next_ms: int, error: str) -> None:
        """Delivery failed: try again (and the notifier's later ones no sooner) at `next_ms`."""
        ...

    async def to_outbox(self, pending: Sequence[Pending]) -> None:
        """Hand notifications to the Kafka outbox and forget them, in one transaction."""
        ...

    async def aclose(self) -> None:
        """Close the connection (and so give up leading)."""
        ...


class PostgresAlertStore:
    """`AlertStore` on one PostgreSQL connection; the evaluator leads with a session-level
    advisory lock (released when the connection ends, also when the process dies)."""

    poll_s = 0.5

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def lead(self, stop: asyncio.Event, standby: Callable[[], None]) -> bool:
        return await lead(self._conn, EVALUATOR_LOCK, stop, standby)

    async def listen(self, feed: asyncio.Event | None, queued: asyncio.Event | None) -> None:
        if feed is not None:
            await self._conn.add_listener(FEED_CHANNEL, lambda *_: feed.set())
        if queued is not None:
            await self._conn.add_listener(NOTIFY_CHANNEL, lambda *_: queued.set())

    async def load_checkpoint(self) -> Checkpoint:
        return await load_checkpoint(self._conn)

    async def save_checkpoint(self, cp: Checkpoint, now_ms: int) -> None:
        await save_checkpoint(self._conn, cp, now_ms)

    async def fetch_feed(self, after: Position, limit: int) -> list[FeedRow]:
        return await fetch_feed(self._conn, after, limit)

    async def record(
        self,
        transitions: Sequence[Transition],
        now_ms: int,
        silenced: Callable[[Transition], bool],
    ) -> list[dict[str, Any]]:
        new = await record(self._conn, transitions, now_ms, silenced)
        if new:
            await self._conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
        return new

    async def claim(self, now_ms: int, limit: int) -> list[Pending]:
        return await claim_notifications(self._conn, now_ms, limit)

    async def delivered(self, ids: Sequence[int]) -> None:
        await delivered(self._conn, ids)

    async def retry_later(self, notifier: str, nid: int, next_ms: int, error: str) -> None:
        await retry_later(self._conn, notifier, nid, next_ms, error)

    async def to_outbox(self, pending: Sequence[Pending]) -> None:
        async with self._conn.transaction():
            await write_alerts(self._conn, [notification_body(p) for p in pending])
            await delivered(self._conn, [p.id for p in pending])

    async def aclose(self) -> None:
        try:
            await self._conn.close(timeout=5)
        except PG_ERRORS:
            self._conn.terminate()
