"""Sparkplug B topics and how their names become Millstream's (pure).

`spBv1.0/{group}/{type}/{edge node}[/{device}]`, and `spBv1.0/STATE/{host id}` for host
applications (Sparkplug B 3.0 §4.1). Group, node and device ids become site/line/machine by a
`SpbNaming` rule (default site = group, line = edge node, machine = device, node-level metrics on
machine = edge node); metric names become tags with `/` as `.` and anything else outside the tag
alphabet as `_`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from wire.errors import PayloadError, shorten
from wire.limits import RESERVED_SITES

__all__ = [
    "NAMESPACE",
    "SpbKind",
    "SpbNaming",
    "SpbTopic",
    "command_topic",
    "parse_topic",
    "segment",
    "state_topic",
    "subscriptions",
    "tag_name",
]

NAMESPACE = "spBv1.0"
SpbKind = Literal["NBIRTH", "NDEATH", "DBIRTH", "DDEATH", "NDATA", "DDATA", "NCMD", "DCMD"]
_KINDS = frozenset(get_args(SpbKind))
_NOT_SEGMENT = re.compile(r"[^A-Za-z0-9_-]")
_NOT_TAG = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class SpbTopic:
    """A parsed Sparkplug topic; `device` is None for node-level messages."""

    group: str
    kind: SpbKind
    node: str
    device: str | None


def parse_topic(topic: str) -> SpbTopic:
    """Split an edge node or device topic (raises `PayloadError` reason `bad_topic`)."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE or parts[2] not in _KINDS:
        raise PayloadError("bad_topic", f"not a Sparkplug B edge topic: {shorten(topic)}")
    if any(not p for p in parts):
        raise PayloadError("bad_topic", f"empty id in Sparkplug topic {shorten(topic)}")
    kind: SpbKind = parts[2]  # type: ignore[assignment]
    device = parts[4] if len(parts) == 5 else None
    if (device is None) != kind.startswith("N"):
        raise PayloadError("bad_topic", f"{kind} on the wrong level: {shorten(topic)}")
    return SpbTopic(parts[1], kind, parts[3], device)


def state_topic(host_id: str) -> str:
    """Where a primary host application announces itself (retained, Sparkplug 3.0 §5.12)."""
    return f"{NAMESPACE}/STATE/{host_id}"


def command_topic(group: str, node: str, device: str | None = None) -> str:
    """NCMD for an edge node, DCMD for one of its devices."""
    if device is None:
        return f"{NAMESPACE}/{group}/NCMD/{node}"
    return f"{NAMESPACE}/{group}/DCMD/{node}/{device}"


def subscriptions() -> list[str]:
    """What a host application subscribes to: births, deaths and data of every edge node."""
    return [f"{NAMESPACE}/+/{kind}/#" for kind in sorted(_KINDS) if not kind.endswith("CMD")]


def segment(value: str) -> str:
    """An id as a topic segment of Millstream's tree (`[A-Za-z0-9_-]{1,64}`)."""
    return _NOT_SEGMENT.sub("_", value)[:64] or "_"


def tag_name(metric: str) -> str:
    """A metric name as a tag: `Motor/Speed rpm` → `Motor.Speed_rpm` (at most 128 characters)."""
    return _NOT_TAG.sub("_", metric.replace("/", "."))[:128] or "_"


@dataclass(frozen=True, slots=True)
class SpbNaming:
    """Which Sparkplug ids make site, line and machine: templates over `{group}`, `{node}`
    and `{device}` (for node-level metrics `{device}` is the edge node id)."""

    site: str = "{group}"
    line: str = "{node}"
    machine: str = "{device}"

    def machine_of(self, group: str, node: str, device: str | None) -> tuple[str, str, str]:
        """(site, line, machine) for a message of this group, node and device; raises
        `PayloadError` (bad_topic) when the site would be a reserved name."""
        ids = {"group": group, "node": node, "device": device if device is not None else node}
        site, line, machine = (
            segment(t.format_map(ids)) for t in (self.site, self.line, self.machine)
        )
        if site in RESERVED_SITES:
            raise PayloadError("bad_topic", f"site {site!r} is reserved; map the group elsewhere")
        return site, line, machine
