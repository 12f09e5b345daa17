"""Latest values and live updates (pure): coalescing committed batches, Redis encodings.

A latest value is stored as `{"v": …, "ts": …, "q": …}` under its tag in the hash
`ms:latest:{site}/{line}/{machine}`. A live update is every reading of one machine that one hub
instance validated, as its own WebSocket clients got them:
`{"o": "<instance>", "m": "site/line/machine", "r": [[tag, ts, v, q], …]}`; `o` lets the
instance skip its own updates (it delivered them locally already). It goes out on its site's
channel, `{prefix}:{site}` (`site_channel`), and an instance subscribes only to the channels of
the sites its own clients watch (`channels_for`, `channel_changes`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Set
from dataclasses import dataclass
from typing import NamedTuple

from hub.storage.model import TelemetryBatch

__all__ = [
    "Latest",
    "MachineId",
    "Pending",
    "Update",
    "channel_changes",
    "channels_for",
    "coalesce",
    "decode_latest",
    "decode_update",
    "encode_latest",
    "encode_update",
    "merge",
    "site_channel",
    "updates_of",
]

Value = float | int | bool | str
MachineId = str  # "site/line/machine"
Pending = dict[MachineId, dict[str, "Latest"]]


class Latest(NamedTuple):
    """The newest reading of one series."""

    v: Value
    ts: int
    q: str


@dataclass(frozen=True, slots=True)
class Update:
    """Every reading of one machine that one hub instance validated (what its clients got)."""

    origin: str  # the hub instance that announced it
    machine: MachineId
    readings: tuple[tuple[str, int, Value, str], ...]  # (tag, ts, v, q)

    @property
    def site(self) -> str:
        """The machine's site (which channel the update goes out on)."""
        return self.machine.split("/", 1)[0]

    @property
    def parts(self) -> tuple[str, str, str]:
        """(site, line, machine)."""
        site, line, machine = self.machine.split("/", 2)
        return site, line, machine


def site_channel(prefix: str, site: str) -> str:
    """The pub/sub channel of one site's live updates: `{prefix}:{site}`."""
    return f"{prefix}:{site}"


def channels_for(prefix: str, sites: Iterable[str]) -> frozenset[str]:
    """The channels an instance subscribes to when its clients watch machines of `sites`."""
    return frozenset(site_channel(prefix, site) for site in sites)


def channel_changes(joined: Set[str], wanted: Set[str]) -> tuple[list[str], list[str]]:
    """(channels to subscribe to, channels to unsubscribe from), each sorted, to go from the
    channels `joined` to the channels `wanted`."""
    return sorted(wanted - joined), sorted(joined - wanted)


def updates_of(origin: str, batches: Iterable[TelemetryBatch]) -> list[Update]:
    """One update per machine of these batches, every reading in order."""
    out: dict[MachineId, list[tuple[str, int, Value, str]]] = {}
    for b in batches:
        rows = out.setdefault(f"{b.site}/{b.line}/{b.machine}", [])
        rows.extend((r.tag, r.ts, r.v, r.q) for r in b.readings)
    return [Update(origin, m, tuple(rows)) for m, rows in out.items() if rows]


def coalesce(batches: Iterable[TelemetryBatch], into: Pending | None = None) -> Pending:
    """Newest reading per series of these batches, merged into `into` (ts only moves forward)."""
    out: Pending = {} if into is None else into
    for b in batches:
        tags = out.setdefault(f"{b.site}/{b.line}/{b.machine}", {})
        for r in b.readings:
            cur = tags.get(r.tag)
            if cur is None or r.ts >= cur.ts:
                tags[r.tag] = Latest(r.v, r.ts, r.q)
    return out


def merge(older: Pending, newer: Pending) -> Pending:
    """`older` updated with `newer` where newer is not older in ts (returns `older`)."""
    for machine, values in newer.items():
        tags = older.setdefault(machine, {})
        for tag, latest in values.items():
            cur = tags.get(tag)
            if cur is None or latest.ts >= cur.ts:
                tags[tag] = latest
    return older


def encode_latest(latest: Latest) -> str:
    """The hash field value of a latest reading."""
    return json.dumps({"v": latest.v, "ts": latest.ts, "q": latest.q}, separators=(",", ":"))


def decode_latest(raw: str | bytes) -> Latest | None:
    """A latest reading from its hash field value (None if unreadable)."""
    try:
        d = json.loads(raw)
        return Latest(d["v"], int(d["ts"]), str(d["q"]))
    except (ValueError, KeyError, TypeError):
        return None


def encode_update(update: Update) -> str:
    """The pub/sub message of one update."""
    body = {"o": update.origin, "m": update.machine, "r": [list(r) for r in update.readings]}
    return json.dumps(body, separators=(",", ":"))


def decode_update(raw: str | bytes) -> Update | None:
    """An update from a pub/sub message (None if it is not one of ours)."""
    try:
        d = json.loads(raw)
        origin, machine = d["o"], d["m"]
        readings = tuple((str(t), int(ts), v, str(q)) for t, ts, v, q in d["r"])
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None
    if not isinstance(machine, str) or machine.count("/") != 2 or not isinstance(origin, str):
        return None
    return Update(origin, machine, readings)
