"""Who may publish for which machine, from the broker identities the hub made (hub/devices).

The broker confines each identity to its topics; the `src` inside a payload is only what the
publisher says. So for a machine a device identity owns, only that device's `src` is taken, and
on a line agent identities own, only theirs: a batch naming another publisher's `src` there is
set aside as `not_authorized` (and never receipted, to anyone). Machines no identity covers
(a broker with a static ACL file) are judged as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from hub.devices.identities import Identity
from hub.devices.service import identity_of
from hub.ingest.message import Incoming
from hub.sql import Database
from hub.storage import DeadLetter, TelemetryBatch

__all__ = ["Owners", "load_owners"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Owners:
    """Machine → the device `src` that owns it; line → the agent `src`s that own it."""

    devices: dict[tuple[str, str, str], str] = field(default_factory=dict)
    agents: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, identities: Iterable[Identity]) -> Owners:
        """From the identities (disabled ones too: the broker refuses those anyway)."""
        devices: dict[tuple[str, str, str], str] = {}
        agents: dict[tuple[str, str], set[str]] = {}
        for i in identities:
            if i.kind == "device":
                for machine in i.machines:
                    devices[i.site, i.line, machine] = i.src
            else:
                agents.setdefault((i.site, i.line), set()).add(i.src)
        return cls(devices, {k: frozenset(v) for k, v in agents.items()})

    def judge(self, msg: Incoming, batch: TelemetryBatch) -> DeadLetter | None:
        """None if `batch` may be stored, else the dead letter that replaces it."""
        if not batch.receipt:
            return None  # another dialect (Sparkplug): its src is ours, not the publisher's
        owner = self.devices.get((batch.site, batch.line, batch.machine))
        allowed = {owner} if owner is not None else self.agents.get((batch.site, batch.line))
        if allowed is None or batch.src in allowed:
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
