"""The statements both storage backends run to record statuses, production, ownership,
outages and meta: written once, in PostgreSQL's dialect, and turned into SQLite's by
`for_sqlite` (numbered parameters `?N`, scalar `max` for `greatest`). The readings and rollup
statements differ too much between the two (partitions, `unnest`) and stay with each backend.
"""

from __future__ import annotations

import re

__all__ = [
    "AGENT_OUTAGE_CLOSE",
    "AGENT_OUTAGE_OPEN",
    "AGENT_UPSERT",
    "COMMAND_RESULT",
    "DEVICE_OUTAGE_CLOSE",
    "DEVICE_OUTAGE_OPEN",
    "DROP_SPAN_UPSERT",
    "MACHINE_UPSERT",
    "META_UPSERT",
    "OWNER_UPSERT",
    "PRODUCED_UPSERT",
    "SPARKPLUG_BIRTH_UPSERT",
    "for_sqlite",
]

# Statuses are ordered by when the hub received them, not by their `ts`: a last will carries the
# time its connection began, so a will ordered by `ts` would lose to the statuses it outlived.
# Two commits may land out of order; the receive time still orders them.
MACHINE_UPSERT = """
INSERT INTO machines AS m (site, line, machine, state, status_ts, detail, payload, last_seen)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (site, line, machine) DO UPDATE SET
    state = excluded.state, status_ts = excluded.status_ts, detail = excluded.detail,
    payload = excluded.payload, last_seen = greatest(m.last_seen, excluded.last_seen)
WHERE excluded.last_seen >= m.last_seen
"""

AGENT_UPSERT = """
INSERT INTO agents AS a (agent_id, state, status_ts, version, buffer_depth, drops, payload,
                         last_seen)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (agent_id) DO UPDATE SET
    state = excluded.state, status_ts = excluded.status_ts, version = excluded.version,
    buffer_depth = excluded.buffer_depth, drops = excluded.drops, payload = excluded.payload,
    last_seen = greatest(a.last_seen, excluded.last_seen)
WHERE excluded.last_seen >= a.last_seen
"""

# A minute is reported again in every status with a count that only grows; a late or replayed
# status must not lower it.
PRODUCED_UPSERT = """
INSERT INTO produced_minutes AS p (site, line, machine, minute, produced, agent_id, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (site, line, machine, minute) DO UPDATE SET
    produced = greatest(p.produced, excluded.produced), agent_id = excluded.agent_id,
    updated_at = greatest(p.updated_at, excluded.updated_at)
"""

# The agent that named a machine most recently polls it now (a machine may move to another PC).
OWNER_UPSERT = """
INSERT INTO machine_agents AS o (site, line, machine, agent_id, updated_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (site, line, machine) DO UPDATE SET
    agent_id = excluded.agent_id, updated_at = excluded.updated_at
WHERE excluded.updated_at >= o.updated_at
"""

# Outages (hub/storage/rows.py `outage_events`): open one unless one of that kind is open, close
# the open one. An agent's outage is one per machine it polls (`machine_agents`).
DEVICE_OUTAGE_OPEN = """
INSERT INTO machine_outages (site, line, machine, kind, reason, start_ms)
SELECT CAST($1 AS text), CAST($2 AS text), CAST($3 AS text), 'device', CAST($4 AS text),
       CAST($5 AS bigint)
WHERE NOT EXISTS (SELECT 1 FROM machine_outages WHERE site = $1 AND line = $2
                  AND machine = $3 AND kind = 'device' AND end_ms IS NULL)
"""
DEVICE_OUTAGE_CLOSE = """
UPDATE machine_outages SET end_ms = greatest(start_ms, CAST($4 AS bigint))
WHERE site = $1 AND line = $2 AND machine = $3 AND kind = 'device' AND end_ms IS NULL
"""
AGENT_OUTAGE_OPEN = """
INSERT INTO machine_outages (site, line, machine, kind, reason, start_ms)
SELECT o.site, o.line, o.machine, 'agent', CAST($2 AS text), CAST($3 AS bigint)
FROM machine_agents o
WHERE o.agent_id = $1 AND NOT EXISTS (
    SELECT 1 FROM machine_outages m WHERE m.site = o.site AND m.line = o.line
    AND m.machine = o.machine AND m.kind = 'agent' AND m.end_ms IS NULL)
"""
AGENT_OUTAGE_CLOSE = """
UPDATE machine_outages AS m SET end_ms = greatest(m.start_ms, CAST($2 AS bigint))
FROM machine_agents AS o
WHERE o.agent_id = $1 AND m.site = o.site AND m.line = o.line AND m.machine = o.machine
  AND m.kind = 'agent' AND m.end_ms IS NULL
"""

# A span of readings an agent's buffer dropped, repeated in every status while it is among the
# newest: it only grows (a later drop extends it), and it names how many readings are gone.
DROP_SPAN_UPSERT = """
INSERT INTO machine_outages AS m (site, line, machine, kind, reason, start_ms, end_ms)
VALUES ($1, $2, $3, 'drop', $4, $5, $6)
ON CONFLICT (site, line, machine, kind, start_ms) DO UPDATE SET
    reason = excluded.reason, end_ms = greatest(m.end_ms, excluded.end_ms)
"""

# A meta message replaces the machine's tag list unless an equal or newer one is already kept;
# RETURNING says whether it was.
META_UPSERT = """
INSERT INTO machine_meta AS m (site, line, machine, meta_ts, payload, received_at, quiet_ms,
                               scheduled_per_minute)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (site, line, machine) DO UPDATE SET
    meta_ts = excluded.meta_ts, payload = excluded.payload, received_at = excluded.received_at,
    quiet_ms = excluded.quiet_ms, scheduled_per_minute = excluded.scheduled_per_minute
WHERE excluded.meta_ts >= m.meta_ts
RETURNING 1
"""


# An agent's answer to a command: only to a command sent to that agent (the broker lets only
# agent X publish on `ms/v1/agents/X/cmd/res`, so a result cannot speak for another agent's
# command), and only the first answer counts (QoS 1 may repeat it).
COMMAND_RESULT = """
UPDATE commands SET status = $3, detail = $4, finished_at = $5, previous = $6, read_back = $7,
                    answered_at = $8
WHERE id = $1 AND agent_id = $2 AND status IS NULL
"""

# A birth replaces the one before (a rebirth may renumber aliases); commits of two instances
# may land out of order, so the later-received birth wins.
SPARKPLUG_BIRTH_UPSERT = """
INSERT INTO sparkplug_births AS b (group_id, edge_node, device, bd_seq, metrics, received_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (group_id, edge_node, device) DO UPDATE SET
    bd_seq = excluded.bd_seq, metrics = excluded.metrics, received_at = excluded.received_at
WHERE excluded.received_at >= b.received_at
"""


# A machine event is stored once: a batch sent again (no receipt yet) finds its rows there.
EVENT_INSERT = """
INSERT INTO machine_events (site, line, machine, event_id, ts, source, type, severity, message,
                            state, fields, src, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (site, line, machine, event_id, ts) DO NOTHING
"""


def for_sqlite(sql: str) -> str:
    """One of the statements above in SQLite's dialect."""
    return re.sub(r"\$(\d+)", r"?\1", sql.replace("greatest(", "max("))
