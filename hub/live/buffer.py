"""A WebSocket client's pending updates (pure): bounded, and a slow client gets latest values.

Updates append per machine until the client's sender takes them. When a client falls behind by
more than `max_readings`, its pending readings collapse to the newest per (machine, tag): it
skips the history it could not keep up with instead of queueing it, so memory stays bounded and
its lag never grows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.live.frames import text_frame

__all__ = ["ClientBuffer", "Update", "filtered", "make_update"]


@dataclass(frozen=True, slots=True)
class Update:
    """Readings of one machine, with their JSON encoded once for every client."""

    machine: str
    readings: tuple[dict[str, Any], ...]
    body: str  # the readings as JSON array items, comma-separated, without brackets
    message: str  # the whole `readings` message, sent as is to every client that takes it alone
    frame: bytes  # `message` as a WebSocket text frame, written as is to every such client


def _message(machine: str, bodies: str) -> str:
    return f'{{"type":"readings","machine":{json.dumps(machine)},"readings":[{bodies}]}}'


def make_update(machine: str, readings: Sequence[dict[str, Any]]) -> Update:
    """An update for `machine` (readings as {"tag","ts","v","q"} dicts)."""
    items = tuple(readings)
    body = json.dumps(items, separators=(",", ":"))[1:-1] if items else ""
    message = _message(machine, body)
    return Update(machine, items, body, message, text_frame(message.encode()))


def filtered(update: Update, tags: frozenset[str] | None) -> Update | None:
    """`update` with only `tags` (all when None); None when no reading is left."""
    if tags is None:
        return update
    kept = [r for r in update.readings if r["tag"] in tags]
    return make_update(update.machine, kept) if kept else None


class ClientBuffer:
    """Pending updates of one client; see module docstring."""

    def __init__(self, max_readings: int = 10_000) -> None:
        self._pending: dict[str, list[Update]] = {}
        self._size = 0
        self._max = max_readings
        self.coalesced = 0  # readings skipped because the client was behind

    def __len__(self) -> int:
        return self._size

    def add(self, update: Update, tags: frozenset[str] | None = None) -> None:
        """Queue an update (only `tags` of it when given); compact if over the bound."""
        kept = filtered(update, tags)
        if kept is None:
            return
        self._pending.setdefault(kept.machine, []).append(kept)
        self._size += len(kept.readings)
        if self._size > self._max:
            self._compact()

    def _compact(self) -> None:
        size = 0
        for machine, updates in self._pending.items():
            newest: dict[str, dict[str, Any]] = {}
            for u in updates:
                for r in u.readings:
                    cur = newest.get(r["tag"])
                    if cur is None or r["ts"] >= cur["ts"]:
                        newest[r["tag"]] = r
            collapsed = make_update(machine, sorted(newest.values(), key=lambda r: r["ts"]))
            self._pending[machine] = [collapsed]
            size += len(collapsed.readings)
        self.coalesced += self._size - size
        self._size = size

    def take(self) -> list[str]:
        """Every pending update as one `readings` message per machine; empties the buffer."""
        # A machine with one pending update (the usual case: the client keeps up) sends the
        # update's own message, built once for every subscriber.
        messages = [
            updates[0].message
            if len(updates) == 1
            else _message(machine, ",".join(u.body for u in updates if u.body))
            for machine, updates in self._pending.items()
        ]
        self._pending.clear()
        self._size = 0
        return messages
