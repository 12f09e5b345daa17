"""Latest values and live updates (pure): coalescing committed batches, Redis encodings.

A latest value is stored as `{"v": …, "ts": …, "q": …}` under its tag in the hash
`ms:latest:{site}/{line}/{machine}`; a live update on the pub/sub channel is one machine's
coalesced latest values of one commit: `{"m": "site/line/machine", "t": {"tag": [v, ts, q], …}}`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from hub.storage.model import TelemetryBatch

__all__ = [
    "Latest",
    "MachineId",
    "Pending",
    "Update",
    "coalesce",
    "decode_latest",
    "decode_update",
    "encode_latest",
    "encode_update",
    "merge",
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
    """One machine's new latest values from one commit (what WebSocket clients are pushed)."""

    machine: MachineId
    values: Mapping[str, Latest]

    @property
    def parts(self) -> tuple[str, str, str]:
        """(site, line, machine)."""
        site, line, machine = self.machine.split("/", 2)
        return site, line, machine


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


def encode_update(machine: MachineId, values: Mapping[str, Latest]) -> str:
    """The pub/sub message of one machine's update."""
    body = {"m": machine, "t": {tag: [x.v, x.ts, x.q] for tag, x in values.items()}}
    return json.dumps(body, separators=(",", ":"))


def decode_update(raw: str | bytes) -> Update | None:
    """An update from a pub/sub message (None if it is not one of ours)."""
    try:
        d = json.loads(raw)
        machine = d["m"]
        values = {str(tag): Latest(v[0], int(v[1]), str(v[2])) for tag, v in d["t"].items()}
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None
    if not isinstance(machine, str) or machine.count("/") != 2:
        return None
    return Update(machine, values)
