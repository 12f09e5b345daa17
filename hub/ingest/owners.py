"""Who may publish for which machine, from the broker identities the hub made (hub/devices).

The broker confines each identity to its topics; the `src` inside a payload is only what the
publisher says. So on a machine device identities own (or a line agent identities own), a batch
— telemetry or events —
naming the `src` of **another known identity** is set aside as `not_authorized` (and never
receipted, to anyone): one publisher cannot pass itself off as another, to forge its receipts
or its place in the completeness ledger. A `src` no identity has is let through: nobody to
impersonate, and it is what a device added a moment ago looks like before this map is read
again. Machines no identity covers (a broker with a static ACL file) are judged as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from hub.devices.identities import Identity
from hub.devices.service import identity_of
from hub.ingest.message import Incoming
from hub.sql import Database
from hub.storage import DeadLetter, EventBatch, TelemetryBatch

__all__ = ["Owners", "load_owners"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Owners:
    """Machine → the device `src`s that own it; line → the agent `src`s that own it (a machine
    may have more than one publisher: a gateway and the PLC itself)."""

    devices: dict[tuple[str, str, str], frozenset[str]] = field(default_factory=dict)
    agents: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    known: frozenset[str] = frozenset()  # every identity's src

    @classmethod
    def of(cls, identities: Iterable[Identity]) -> Owners:
        """From the identities (disabled ones too: the broker refuses those anyway)."""
        identities = list(identities)
        devices: dict[tuple[str, str, str], set[str]] = {}
        agents: dict[tuple[str, str], set[str]] = {}
        for i in identities:
            if i.kind == "device":
                for machine in i.machines:
                    devices.setdefault((i.site, i.line, machine), set()).add(i.src)
            else:
                agents.setdefault((i.site, i.line), set()).add(i.src)
        return cls(
            {k: frozenset(v) for k, v in devices.items()},
            {k: frozenset(v) for k, v in agents.items()},
            frozenset(i.src for i in identities),
        )

    def judge(self, msg: Incoming, batch: TelemetryBatch | EventBatch) -> DeadLetter | None:
        """None if `batch` (telemetry or events) may be stored, else the dead letter that
        replaces it."""
        if isinstance(batch, TelemetryBatch) and not batch.receipt:
            return None  # another dialect (Sparkplug): its src is ours, not the publisher's
        allowed = self.devices.get((batch.site, batch.line, batch.machine))
        if allowed is None:
            allowed = self.agents.get((batch.site, batch.line))
        if allowed is None or batch.src in allowed or batch.src not in self.known:
            return None
        return DeadLetter(
            msg.topic,
            msg.payload,
            "not_authorized",
            f"src: {batch.src!r} may not publish for {batch.site}/{batch.line}/{batch.machine};"
            f" its broker identity is {', '.join(sorted(allowed))} (millstream-hub devices list)",
            msg.received_at,
        )


async def load_owners(db: Database) -> Owners:
    """The owners as the `broker_identities` table has them now."""
    rows = await db.fetch("SELECT * FROM broker_identities")
    return Owners.of(identity_of(r) for r in rows)
