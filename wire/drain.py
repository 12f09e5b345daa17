"""The drain budget: how fast the fleet's backlogs may come back after an outage (retained).

Each hub instance publishes, retained on `ms/v1/hub/drain/{instance}`, what it can commit
(readings/s, measured) and its share per agent that has a backlog. An agent's backlog lane sends
at most the sum of the shares of every hub instance it hears from, so that after a central
outage hundreds of agents drain as fast as PostgreSQL commits and no faster: the broker's queues
never overflow and no batch times out waiting for its receipt (docs/wire.md#drain-budget).
"""

from __future__ import annotations

import json
import math

from wire.errors import PayloadError, shorten
from wire.topics import PREFIX

__all__ = ["DRAIN_FILTER", "DrainBudget", "drain_topic", "encode_drain", "parse_drain"]

DRAIN_FILTER = f"{PREFIX}/hub/drain/+"


class DrainBudget:
    """One hub instance's budget as published (`per_agent` readings/s, `capacity` readings/s
    it can commit, `draining` agents it split it among, `ts` epoch ms)."""

    __slots__ = ("capacity", "draining", "per_agent", "ts")

    def __init__(self, per_agent: float, capacity: float, draining: int, ts: int) -> None:
        self.per_agent = per_agent
        self.capacity = capacity
        self.draining = draining
        self.ts = ts

    def __repr__(self) -> str:
        return (
            f"DrainBudget(per_agent={self.per_agent}, capacity={self.capacity}, "
            f"draining={self.draining}, ts={self.ts})"
        )


def drain_topic(instance: str) -> str:
    """The retained topic of one hub instance's budget (its MQTT client id)."""
    return f"{PREFIX}/hub/drain/{instance}"


def encode_drain(budget: DrainBudget) -> bytes:
    """The retained payload."""
    return json.dumps(
        {
            "v": 1,
            "per_agent": round(budget.per_agent, 1),
            "capacity": round(budget.capacity, 1),
            "draining": budget.draining,
            "ts": budget.ts,
        },
        separators=(",", ":"),
    ).encode()


def parse_drain(payload: bytes) -> DrainBudget | None:
    """A budget, or None for an empty payload (the instance is gone: its will clears it).
    Raises PayloadError for anything else that is not a v1 budget."""
    if not payload:
        return None
    try:
        body = json.loads(payload)
        version = body["v"]
        per_agent, capacity = float(body["per_agent"]), float(body["capacity"])
        draining, ts = int(body["draining"]), int(body["ts"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PayloadError("bad_field", f"drain budget {shorten(repr(payload))}: {exc}") from None
    if version != 1 or not all(math.isfinite(x) and x >= 0 for x in (per_agent, capacity)):
        raise PayloadError("bad_field", f"drain budget {shorten(repr(payload))}: not v1")
    return DrainBudget(per_agent, capacity, draining, ts)
