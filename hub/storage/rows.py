"""Telemetry → `readings` rows (pure). The hot loop of ingest, so it avoids per-reading objects."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from hub.storage.model import (
    QUALITY_CODES,
    AgentStatusUpdate,
    CommandResultUpdate,
    EventBatch,
    MachineMetaUpdate,
    MachineStatusUpdate,
    SeriesKey,
    SparkplugBirth,
    TelemetryBatch,
)

__all__ = [
    "DAY_MS",
    "MINUTE_MS",
    "DropRow",
    "OutageEvent",
    "OwnerRow",
    "ProducedRow",
    "Row",
    "SeriesIds",
    "birth_rows",
    "drop_rows",
    "missing_series",
    "newest_metas",
    "outage_events",
    "owner_rows",
    "produced_rows",
    "result_rows",
    "tag_meta_rows",
    "to_rows",
]

DAY_MS = 86_400_000
MINUTE_MS = 60_000

# (series_id, ts, value, value_text, quality)
Row = tuple[int, int, float | None, str | None, int]

# (site, line, machine, minute, produced, agent_id, updated_at)
ProducedRow = tuple[str, str, str, int, int, str, int]

# (site, line, machine, agent_id, updated_at)
OwnerRow = tuple[str, str, str, str, int]

# (site, line, machine) → tag → series id: one dict lookup per reading instead of a key tuple.
SeriesIds = dict[tuple[str, str, str], dict[str, int]]


def missing_series(batches: Iterable[TelemetryBatch], ids: SeriesIds) -> set[SeriesKey]:
    """Series of these batches that have no id yet."""
    missing: set[SeriesKey] = set()
    for t in batches:
        known = ids.get((t.site, t.line, t.machine), {})
        for tag in {r.tag for r in t.readings} - known.keys():
            missing.add(SeriesKey(t.site, t.line, t.machine, tag))
    return missing


def to_rows(batches: Iterable[TelemetryBatch], ids: SeriesIds) -> tuple[list[Row], set[int]]:
    """Rows for every reading, and the UTC day numbers they fall on (for partitions)."""
    rows: list[Row] = []
    append = rows.append
    days: set[int] = set()
    quality = QUALITY_CODES
    for t in batches:
        tags = ids[(t.site, t.line, t.machine)]
        lo = hi = None
        for r in t.readings:
            v = r.v
            kind = type(v)
            # bool before int (bool is an int); bools are 0/1 with 'true'/'false' alongside.
            if kind is float:
                append((tags[r.tag], r.ts, v, None, quality[r.q]))  # type: ignore[arg-type]
            elif kind is bool:
                append(
                    (tags[r.tag], r.ts, 1.0 if v else 0.0, "true" if v else "false", quality[r.q])
                )
            elif kind is int:
                append((tags[r.tag], r.ts, float(v), None, quality[r.q]))
            else:
                append((tags[r.tag], r.ts, None, str(v), quality[r.q]))
            ts = r.ts
            if lo is None or ts < lo:
                lo = ts
            if hi is None or ts > hi:
                hi = ts
        if lo is not None and hi is not None:
            days.update(range(lo // DAY_MS, hi // DAY_MS + 1))
    return rows, days


def produced_rows(agents: Iterable[AgentStatusUpdate]) -> list[ProducedRow]:
    """`produced_minutes` rows of these statuses: one per machine minute, max count, key order."""
    best: dict[tuple[str, str, str, int], ProducedRow] = {}
    for a in agents:
        # Older agents send no site/line: their machines cannot be named, so nothing is stored.
        if a.site is None or a.line is None:
            continue
        for machine, minute, count in a.produced:
            # The wire does not require aligned minutes; completeness looks them up aligned.
            key = (a.site, a.line, machine, minute - minute % MINUTE_MS)
            held = best.get(key)
            if held is None or count > held[4]:
                best[key] = (*key, count, a.agent_id, a.received_at)
    # Sorted: concurrent transactions upsert the same rows in the same order (no deadlock).
    return [best[k] for k in sorted(best)]


def newest_metas(metas: Iterable[MachineMetaUpdate]) -> list[MachineMetaUpdate]:
    """The newest meta of each machine in a batch (last received wins a tie), in key order."""
    best: dict[tuple[str, str, str], MachineMetaUpdate] = {}
    for m in metas:
        key = (m.site, m.line, m.machine)
        held = best.get(key)
        if held is None or m.ts >= held.ts:
            best[key] = m
    # Sorted: concurrent transactions lock the same rows in the same order (no deadlock).
    return [best[k] for k in sorted(best)]


def owner_rows(agents: Iterable[AgentStatusUpdate]) -> list[OwnerRow]:
    """`machine_agents` rows of these statuses: the agent that last named each machine."""
    best: dict[tuple[str, str, str], OwnerRow] = {}
    for a in agents:
        # The last will names no site, line or machines: the mapping outlives the agent's session.
        if a.site is None or a.line is None:
            continue
        for machine in a.devices:
            key = (a.site, a.line, machine)
            held = best.get(key)
            if held is None or a.received_at >= held[4]:
                best[key] = (*key, a.agent_id, a.received_at)
    return [best[k] for k in sorted(best)]


@dataclass(frozen=True, slots=True)
class OutageEvent:
    """An outage of one machine (`kind` device) or of every machine of one agent (`kind` agent)
    beginning (`opens`) or ending, at the time the hub received the status that says so.

    Receive time, not the status's own `ts`: a last will carries its client's connect time, which
    may be months before the connection died.
    """

    kind: Literal["device", "agent"]
    opens: bool
    key: tuple[str, ...]  # (site, line, machine) for device, (agent_id,) for agent
    reason: str
    at_ms: int


def outage_events(
    machines: Iterable[MachineStatusUpdate], agents: Iterable[AgentStatusUpdate]
) -> list[OutageEvent]:
    """The outages these statuses begin or end, in the order the hub received them."""
    events = [
        OutageEvent(
            "device",
            m.state == "offline",
            (m.site, m.line, m.machine),
            (m.detail or "the machine reported offline") if m.state == "offline" else "",
            m.received_at,
        )
        for m in machines
    ]
    events += [
        OutageEvent(
            "agent",
            a.state == "offline",
            (a.agent_id,),
            f"agent {a.agent_id} offline" if a.state == "offline" else "",
            a.received_at,
        )
        for a in agents
    ]
    return sorted(events, key=lambda e: e.at_ms)


# (site, line, machine, reason, first ts, last ts)
DropRow = tuple[str, str, str, str, int, int]


def drop_rows(agents: Iterable[AgentStatusUpdate]) -> list[DropRow]:
    """`machine_outages` rows (kind `drop`) for the drop spans these statuses report."""
    return [
        (
            a.site,
            a.line,
            machine,
            f"dropped at the edge (agent {a.agent_id}'s buffer full or past max_age): {n} readings",
            first,
            last,
        )
        for a in agents
        if a.site is not None and a.line is not None
        for machine, first, last, n in a.drop_spans
    ]


def result_rows(
    results: Iterable[CommandResultUpdate],
) -> list[tuple[str, str, str, str, int, str | None, str | None, int]]:
    """`statements.COMMAND_RESULT` parameters of agents' answers to commands."""
    return [
        (r.id, r.agent_id, r.status, r.detail, r.ts, r.previous, r.read_back, r.received_at)
        for r in results
    ]


EventParams = tuple[str, str, str, str, int, str, str, int, str, str | None, str, str, int]


def event_rows(batches: Iterable[EventBatch]) -> list[EventParams]:
    """`statements.EVENT_INSERT` parameters of machine event batches."""
    return [
        (b.site, b.line, b.machine, e.id, e.ts, e.source, e.type, e.severity, e.message, e.state,
         e.fields, b.src, b.received_at)
        for b in batches
        for e in b.events
    ]  # fmt: skip


def birth_rows(
    births: Iterable[SparkplugBirth],
) -> list[tuple[str, str, str, int | None, str, int]]:
    """`statements.SPARKPLUG_BIRTH_UPSERT` parameters (metrics as JSON text)."""
    return [
        (
            b.group,
            b.node,
            b.device,
            b.bd_seq,
            json.dumps([list(m) for m in b.metrics], separators=(",", ":"), ensure_ascii=False),
            b.received_at,
        )
        for b in births
    ]


TagMetaRow = tuple[
    str, str | None, str | None, float | None, float | None, bool, float | None, float | None
]


def tag_meta_rows(m: MachineMetaUpdate) -> list[TagMetaRow]:
    """`tag_meta` rows of a meta message, by tag: (tag, unit, description, limit_low,
    limit_high, writable, write_min, write_max)."""
    limits = {tag: (low, high) for tag, low, high in m.limits}
    writable = {tag: (low, high) for tag, low, high in m.writable}
    return [
        (
            tag, unit, description, *limits.get(tag, (None, None)), tag in writable,
            *writable.get(tag, (None, None)),
        )
        for tag, unit, description in sorted(m.tags)
    ]  # fmt: skip
