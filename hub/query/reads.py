"""The API's read-side queries over a `Database` (PostgreSQL, or SQLite for the demo)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from hub.query.completeness import Outage
from hub.query.downsample import merge_buckets
from hub.query.fleet import MachineFacts, judge
from hub.sql import Database
from hub.storage.model import RollupRow, StoredReading

__all__ = ["QUALITY_NAMES", "ReadQueries", "SeriesInfo", "wire_value"]

QUALITY_NAMES = ("good", "uncertain", "bad")


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """A series: id, identity, and the unit and description its machine's meta gives it."""

    id: int
    site: str
    line: str
    machine: str
    tag: str
    unit: str | None = None
    description: str | None = None
    # The plausible range from the machine's device profile (meta `limits`), if any.
    limit_low: float | None = None
    limit_high: float | None = None
    # Commands may write it (meta `writable`), within [write_min, write_max].
    writable: bool = False
    write_min: float | None = None
    write_max: float | None = None


_SERIES = (
    "SELECT s.id, s.site, s.line, s.machine, s.tag, t.unit, t.description, t.limit_low,"
    " t.limit_high, coalesce(t.writable, false) AS writable, t.write_min, t.write_max"
    " FROM series s"
    " LEFT JOIN tag_meta t ON t.site = s.site AND t.line = s.line AND t.machine = s.machine"
    " AND t.tag = s.tag"
)
# Units change only when a profile does: a history request may show one a minute old.
SERIES_CACHE_S = 60.0


def _payload(text: object) -> dict[str, Any]:
    try:
        doc = json.loads(str(text))
    except (TypeError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


_LATEST_PG = """
SELECT s.id, s.tag, r.ts, r.value, r.value_text, r.quality
FROM series s
CROSS JOIN LATERAL (
    SELECT ts, value, value_text, quality FROM readings
    WHERE series_id = s.id ORDER BY ts DESC LIMIT 1
) r
WHERE s.site = $1 AND s.line = $2 AND s.machine = $3
ORDER BY s.tag
"""

_LATEST_SQLITE = """
SELECT s.id, s.tag, r.ts, r.value, r.value_text, r.quality
FROM series s JOIN readings r ON r.series_id = s.id
 AND r.ts = (SELECT max(ts) FROM readings WHERE series_id = s.id)
WHERE s.site = $1 AND s.line = $2 AND s.machine = $3
ORDER BY s.tag
"""


class ReadQueries:
    """Every query the REST API runs; rows come back as plain dicts or storage models."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # A series' identity never changes once created and its unit seldom does: cache it
        # (bounded, for SERIES_CACHE_S) to save a round trip per history request.
        self._series_cache: dict[int, tuple[float, SeriesInfo]] = {}

    async def ping(self) -> None:
        """Raise `StorageUnavailable` unless the database answers."""
        await self._db.fetch("SELECT 1 AS ok")

    async def machine_keys(
        self, after: tuple[str, str, str] | None, limit: int
    ) -> list[tuple[str, str, str]]:
        """The first `limit` (site, line, machine) after `after`, in order: a page's keys.

        A machine is known from any of three tables; each branch walks its own primary or
        unique key index from the cursor and stops after `limit` rows."""
        where, args = _after(("site", "line", "machine"), after, 2)
        branches = [
            f"SELECT * FROM (SELECT {distinct}site, line, machine FROM {table}"  # noqa: S608
            f" WHERE {where} ORDER BY site, line, machine LIMIT $1) AS {table}_keys"
            for table, distinct in (
                ("machines", ""),
                ("series", "DISTINCT "),
                ("machine_agents", ""),
            )
        ]
        rows = await self._db.fetch(
            " UNION ".join(branches) + " ORDER BY site, line, machine LIMIT $1", limit, *args
        )
        return [(str(r["site"]), str(r["line"]), str(r["machine"])) for r in rows]

    async def machines(
        self,
        now_ms: int,
        after: tuple[str, str, str] | None = None,
        through: tuple[str, str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Every machine known from status, telemetry or an agent, judged (hub/query/fleet.py);
        only those after `after` and up to `through` (inclusive) when given, in key order."""
        keys = ("site", "line", "machine")
        where, args = _after(keys, after, 1, through=through)
        status = await self._db.fetch(
            "SELECT site, line, machine, state, detail, status_ts, last_seen FROM machines"  # noqa: S608
            f" WHERE {where}",
            *args,
        )
        seen = await self._db.fetch(
            "SELECT s.site, s.line, s.machine, count(*) AS series,"  # noqa: S608
            " max((SELECT h.last_ts FROM rollup_hour h WHERE h.series_id = s.id"
            "      ORDER BY h.bucket DESC LIMIT 1)) AS last_reading"
            f" FROM series s WHERE {_after(keys, after, 1, through=through, alias='s')[0]}"
            " GROUP BY s.site, s.line, s.machine",
            *args,
        )
        quiet = await self._db.fetch(
            "SELECT site, line, machine, quiet_ms FROM machine_meta"  # noqa: S608
            f" WHERE quiet_ms IS NOT NULL AND {where}",
            *args,
        )
        owners = await self._db.fetch(
            "SELECT o.site, o.line, o.machine, o.agent_id, a.state, a.payload"  # noqa: S608
            " FROM machine_agents o LEFT JOIN agents a ON a.agent_id = o.agent_id"
            f" WHERE {_after(keys, after, 1, through=through, alias='o')[0]}",
            *args,
        )
        out: dict[tuple[str, str, str], dict[str, Any]] = {}

        def item(r: dict[str, Any]) -> dict[str, Any]:
            key = (r["site"], r["line"], r["machine"])
            return out.setdefault(
                key,
                {
                    "site": key[0],
                    "line": key[1],
                    "machine": key[2],
                    "status": None,
                    "detail": None,
                    "agent": None,
                    "agent_state": None,
                    "poll_errors": 0,
                    "quiet_ms": None,
                    "series": 0,
                    "last_reading_ms": None,
                    "last_seen_ms": None,
                },
            )

        for r in seen:
            m = item(r)
            m["series"] = int(r["series"])
            m["last_reading_ms"] = m["last_seen_ms"] = r["last_reading"]
        for r in status:
            m = item(r)
            m["status"], m["detail"] = r["state"], r["detail"]
            candidates = [t for t in (m["last_seen_ms"], r["last_seen"]) if t is not None]
            m["last_seen_ms"] = max(candidates) if candidates else None
        errors: dict[str, dict[str, Any]] = {}
        for r in owners:
            m = item(r)
            m["agent"], m["agent_state"] = r["agent_id"], r["state"]
            if r["agent_id"] not in errors:
                errors[r["agent_id"]] = _payload(r["payload"]).get("poll_errors") or {}
            count = errors[r["agent_id"]].get(r["machine"])
            m["poll_errors"] = count if isinstance(count, int) else 0
        for r in quiet:
            key = (r["site"], r["line"], r["machine"])
            if key in out:  # meta alone (no reading, no status) does not make a machine
                out[key]["quiet_ms"] = int(r["quiet_ms"])
        for m in out.values():
            # Rollups hold numeric readings only: a text-only machine is judged by its status.
            last = m["last_reading_ms"]
            facts = MachineFacts(
                status=m["status"],
                detail=m["detail"],
                last_ms=m["last_seen_ms"] if last is None else last,
                agent=m["agent"],
                agent_state=m["agent_state"],
                poll_errors=m.pop("poll_errors"),
                quiet_ms=m.pop("quiet_ms"),
            )
            judged = judge(facts, now_ms)
            m["state"], m["reason"] = judged.state, judged.reason
        return [out[k] for k in sorted(out)]

    async def series(
        self,
        site: str | None = None,
        machine: str | None = None,
        *,
        after: tuple[str, str, str, str] | None = None,
        limit: int | None = None,
    ) -> list[SeriesInfo]:
        """Every series, optionally of one site and/or machine name, in (site, line, machine,
        tag) order (the unique key); only those after `after`, at most `limit`, when given."""
        cast = "::text" if self._db.dialect == "postgresql" else ""
        where, args = _after(("site", "line", "machine", "tag"), after, 3, alias="s")
        rows = await self._db.fetch(
            f"{_SERIES} WHERE ($1{cast} IS NULL OR s.site = $1)"
            f" AND ($2{cast} IS NULL OR s.machine = $2) AND {where}"
            " ORDER BY s.site, s.line, s.machine, s.tag" + _limit(limit, 3 + len(args)),
            site,
            machine,
            *args,
            *([] if limit is None else [limit]),
        )
        return [SeriesInfo(**r) for r in rows]

    async def series_by_id(self, series_id: int) -> SeriesInfo | None:
        """One series, if it exists."""
        now = time.monotonic()
        cached = self._series_cache.get(series_id)
        if cached is not None and now - cached[0] < SERIES_CACHE_S:
            return cached[1]
        rows = await self._db.fetch(f"{_SERIES} WHERE s.id = $1", series_id)
        if not rows:
            return None
        if len(self._series_cache) >= 100_000:
            self._series_cache.clear()
        info = SeriesInfo(**rows[0])
        self._series_cache[series_id] = (now, info)
        return info

    async def machine_series(self, site: str, line: str, machine: str) -> dict[str, int]:
        """Series ids of one machine by tag."""
        rows = await self._db.fetch(
            "SELECT id, tag FROM series WHERE site = $1 AND line = $2 AND machine = $3",
            site,
            line,
            machine,
        )
        return {str(r["tag"]): int(r["id"]) for r in rows}

    async def latest(self, site: str, line: str, machine: str) -> list[dict[str, Any]]:
        """The newest stored reading of every series of one machine."""
        sql = _LATEST_PG if self._db.dialect == "postgresql" else _LATEST_SQLITE
        rows = await self._db.fetch(sql, site, line, machine)
        return [
            {
                "series_id": r["id"],
                "tag": r["tag"],
                "ts": r["ts"],
                "v": wire_value(r["value"], r["value_text"]),
                "q": QUALITY_NAMES[r["quality"]] if 0 <= r["quality"] < 3 else "bad",
            }
            for r in rows
        ]

    async def raw(
        self, series_id: int, start_ms: int, end_ms: int, limit: int
    ) -> list[StoredReading]:
        """Readings with start_ms <= ts < end_ms, oldest first, at most `limit`."""
        rows = await self._db.fetch(
            "SELECT ts, value, value_text, quality FROM readings"
            " WHERE series_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts LIMIT $4",
            series_id,
            start_ms,
            end_ms,
            limit,
        )
        return [StoredReading(r["ts"], r["value"], r["value_text"], r["quality"]) for r in rows]

    async def rollups(
        self, series_id: int, source: Literal["minute", "hour"], start_ms: int, end_ms: int
    ) -> list[RollupRow]:
        """Rollup rows of one series with start_ms <= bucket < end_ms, in order."""
        table = "rollup_hour" if source == "hour" else "rollup_minute"
        rows = await self._db.fetch(
            f"SELECT bucket, min, max, sum, count, last_ts, last_value FROM {table}"  # noqa: S608
            " WHERE series_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket",
            series_id,
            start_ms,
            end_ms,
        )
        return [RollupRow(**r) for r in rows]

    async def buckets(
        self,
        series_id: int,
        source: Literal["minute", "hour"],
        width_ms: int,
        start_ms: int,
        end_ms: int,
    ) -> list[RollupRow]:
        """`source` rollups with start_ms <= bucket < end_ms merged into `width_ms` buckets."""
        if self._db.dialect != "postgresql":
            return merge_buckets(await self.rollups(series_id, source, start_ms, end_ms), width_ms)
        # PostgreSQL merges them itself: the API handles at most max_points rows, not every
        # minute of the range (10,080 for a week).
        table = "rollup_hour" if source == "hour" else "rollup_minute"
        rows = await self._db.fetch(
            "SELECT bucket - bucket % $4 AS bucket, min(min) AS min, max(max) AS max,"  # noqa: S608
            " sum(sum) AS sum, sum(count)::bigint AS count, max(last_ts) AS last_ts,"
            " (array_agg(last_value ORDER BY last_ts DESC))[1] AS last_value"
            f" FROM {table} WHERE series_id = $1 AND bucket >= $2 AND bucket < $3"
            " GROUP BY 1 ORDER BY 1",
            series_id,
            start_ms,
            end_ms,
            width_ms,
        )
        return [RollupRow(**r) for r in rows]

    async def agents(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Agent status rows with the health fields of their last status payload, by agent id;
        only those after `after`, at most `limit`, when given."""
        where, args = _after(("agent_id",), None if after is None else (after,), 1)
        rows = await self._db.fetch(
            "SELECT agent_id, state, status_ts, version, buffer_depth, drops, payload, last_seen"  # noqa: S608
            f" FROM agents WHERE {where} ORDER BY agent_id" + _limit(limit, 1 + len(args)),
            *args,
            *([] if limit is None else [limit]),
        )
        out = []
        for r in rows:
            doc = _payload(r["payload"])
            depth, rate = r["buffer_depth"], doc.get("publish_rate")
            out.append(
                {
                    "agent_id": r["agent_id"],
                    "state": r["state"],
                    "status_ts": r["status_ts"],
                    "last_seen_ms": r["last_seen"],
                    "version": r["version"],
                    "buffer_depth": depth,
                    "buffer_age_ms": doc.get("buffer_age_ms"),
                    "dropped": r["drops"],
                    "publish_rate": rate,
                    # Approximation: the backlog drains at no less than the current publish rate.
                    "drain_eta_s": round(depth / rate, 1) if depth and rate else None,
                    "poll_errors": doc.get("poll_errors") or {},
                }
            )
        return out

    async def dead_letters(self, limit: int, before_id: int | None) -> list[dict[str, Any]]:
        """Most recent dead letters first, with a text preview of the payload."""
        rows = await self._db.fetch(
            "SELECT id, received_at, topic, substr(payload, 1, 512) AS head, payload_size,"
            " reason, message, src FROM dead_letters WHERE id < $1 ORDER BY id DESC LIMIT $2",
            before_id if before_id is not None else 2**62,
            limit,
        )
        for r in rows:
            head = r.pop("head")
            r["payload_preview"] = bytes(head).decode("utf-8", errors="replace")
        return rows

    async def minute_counts(
        self, site: str, line: str, machine: str, start_ms: int, end_ms: int
    ) -> dict[int, int]:
        """Readings stored per minute for one machine: numbers and bools from the minute
        rollups, text from `text_minute`."""
        counts: dict[int, int] = {}
        for table in ("rollup_minute", "text_minute"):
            rows = await self._db.fetch(
                f"SELECT b.bucket, sum(b.count) AS n FROM {table} b"  # noqa: S608 -- constants
                " JOIN series s ON s.id = b.series_id"
                " WHERE s.site = $1 AND s.line = $2 AND s.machine = $3"
                " AND b.bucket >= $4 AND b.bucket < $5 GROUP BY b.bucket",
                site,
                line,
                machine,
                start_ms - start_ms % 60_000,
                end_ms,
            )
            for r in rows:
                counts[int(r["bucket"])] = counts.get(int(r["bucket"]), 0) + int(r["n"])
        return counts

    async def produced_counts(
        self, site: str, line: str, machine: str, start_ms: int, end_ms: int
    ) -> dict[int, int]:
        """Readings the machine's agent reported producing per minute (`produced_minutes`)."""
        rows = await self._db.fetch(
            "SELECT minute, produced FROM produced_minutes"
            " WHERE site = $1 AND line = $2 AND machine = $3 AND minute >= $4 AND minute < $5",
            site,
            line,
            machine,
            start_ms - start_ms % 60_000,
            end_ms,
        )
        return {int(r["minute"]): int(r["produced"]) for r in rows}

    async def outages(
        self, site: str, line: str, machine: str, start_ms: int, end_ms: int
    ) -> list[Outage]:
        """Outages of the machine's device or agent overlapping [start_ms, end_ms), oldest first."""
        rows = await self._db.fetch(
            "SELECT kind, reason, start_ms, end_ms FROM machine_outages"
            " WHERE site = $1 AND line = $2 AND machine = $3 AND start_ms < $4"
            " AND (end_ms IS NULL OR end_ms >= $5) ORDER BY start_ms",
            site,
            line,
            machine,
            end_ms,
            start_ms,
        )
        return [
            Outage(
                str(r["kind"]),
                str(r["reason"]),
                int(r["start_ms"]),
                None if r["end_ms"] is None else int(r["end_ms"]),
            )
            for r in rows
        ]

    async def scheduled_per_minute(self, site: str, line: str, machine: str) -> float | None:
        """Readings per minute the machine's meta message schedules, if it declared any."""
        rows = await self._db.fetch(
            "SELECT scheduled_per_minute FROM machine_meta"
            " WHERE site = $1 AND line = $2 AND machine = $3",
            site,
            line,
            machine,
        )
        value = rows[0]["scheduled_per_minute"] if rows else None
        return None if value is None else float(value)


def _after(
    columns: tuple[str, ...],
    after: tuple[str | int, ...] | None,
    first: int,
    *,
    through: tuple[str | int, ...] | None = None,
    alias: str = "",
) -> tuple[str, list[str | int]]:
    """A keyset condition: `columns` (a row value) strictly after `after` and at most `through`,
    with parameters numbered from `first`; `1 = 1` when neither is given.

    Both engines compare row values lexicographically and walk a btree index on `columns` for it
    (PostgreSQL; SQLite since 3.15)."""
    prefix = f"{alias}." if alias else ""
    row = "(" + ", ".join(prefix + c for c in columns) + ")"
    parts: list[str] = []
    args: list[str | int] = []
    for op, key in ((">", after), ("<=", through)):
        if key is None:
            continue
        n = first + len(args)
        parts.append(f"{row} {op} (" + ", ".join(f"${n + i}" for i in range(len(key))) + ")")
        args.extend(key)
    return (" AND ".join(parts) or "1 = 1"), args


def _limit(limit: int | None, n: int) -> str:
    """` LIMIT $n` when there is a limit (PostgreSQL refuses a negative one, SQLite a NULL)."""
    return "" if limit is None else f" LIMIT ${n}"


def wire_value(value: float | None, text: str | None) -> float | bool | str | None:
    """The wire value back from (value, value_text): bools were stored as 1/0 + 'true'/'false'."""
    if text is not None:
        if value is not None and text in ("true", "false"):
            return text == "true"
        return text
    return value
