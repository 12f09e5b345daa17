"""What `stale`, `offline` and `edge` rules judge: machines' states and agents' health, read
from storage with the moment each condition began taken from the stored facts themselves."""

from __future__ import annotations

import json
from typing import Any

from hub.alerts.engine import AgentHealth, Limits, MachineState, SeriesKey
from hub.query import ReadQueries
from hub.query.fleet import stale_after_ms
from hub.sql import Database

__all__ = ["agent_health", "limits_version", "machine_states", "profile_limits"]

_OPEN_OUTAGES = (
    "SELECT site, line, machine, min(start_ms) AS since FROM machine_outages"
    " WHERE end_ms IS NULL AND kind IN ('device', 'agent') GROUP BY site, line, machine"
)
_QUIET = "SELECT site, line, machine, quiet_ms FROM machine_meta"


async def machine_states(db: Database, now_ms: int) -> list[MachineState]:
    """Every machine's judged state (hub/query/fleet.py) and since when: an offline or faulted
    machine from the start of its open outage, a stale one from the moment its newest reading
    became too old."""
    machines = await ReadQueries(db).machines(now_ms)
    outages = {
        (r["site"], r["line"], r["machine"]): r["since"] for r in await db.fetch(_OPEN_OUTAGES)
    }
    quiet = {(r["site"], r["line"], r["machine"]): r["quiet_ms"] for r in await db.fetch(_QUIET)}
    out = []
    for m in machines:
        key = (m["site"], m["line"], m["machine"])
        state, last = m["state"], m["last_seen_ms"]
        since: int | None = None
        if state in ("offline", "faulted"):
            since = outages.get(key, last)
        elif state == "stale" and last is not None:
            since = int(last) + stale_after_ms(quiet.get(key))
        out.append(MachineState(*key, state, None if since is None else int(since), m["reason"]))
    return out


def _doc(text: Any) -> dict[str, Any]:
    try:
        doc = json.loads(str(text))
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


async def agent_health(db: Database) -> list[AgentHealth]:
    """Every agent's last report: drop counter and the age of its oldest unsent reading."""
    rows = await db.fetch("SELECT agent_id, status_ts, last_seen, drops, payload FROM agents")
    out = []
    for r in rows:
        doc = _doc(r["payload"])
        age = doc.get("buffer_age_ms")
        out.append(
            AgentHealth(
                str(doc.get("site") or ""),
                str(doc.get("line") or ""),
                r["agent_id"],
                int(r["status_ts"] or r["last_seen"]),
                int(r["drops"] or 0),
                int(age) if isinstance(age, int | float) else None,
            )
        )
    return out


async def limits_version(db: Database) -> tuple[int, int]:
    """Changes to machines' meta (and so to their limits) show here."""
    rows = await db.fetch(
        "SELECT count(*) AS n, coalesce(max(received_at), 0) AS t FROM machine_meta"
    )
    return int(rows[0]["n"]), int(rows[0]["t"])


async def profile_limits(db: Database) -> dict[SeriesKey, Limits]:
    """Every series' plausible range from its machine's meta (device profile `limits`)."""
    rows = await db.fetch(
        "SELECT site, line, machine, tag, limit_low, limit_high FROM tag_meta"
        " WHERE limit_low IS NOT NULL OR limit_high IS NOT NULL"
    )
    return {
        SeriesKey(r["site"], r["line"], r["machine"], r["tag"]): (r["limit_low"], r["limit_high"])
        for r in rows
    }
