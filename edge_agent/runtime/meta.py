"""Tag metadata the agent publishes for its machines (wire `…/meta`, retained): units, limits
and which tags commands may write, from profiles.

The hub shows a series' unit from the newest meta message of its machine, judges the machine
stale by its tags' heartbeat (`max_interval_ms`) and completeness by what the tags sent on every
poll (`poll_ms`) should produce. One message per device lists every tag, so a unit removed from a
profile disappears at the next agent start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import wire
from edge_agent.config import LoadedConfig
from edge_agent.config.enip_profile import EnipProfile
from edge_agent.config.modbus_profile import ModbusProfile
from edge_agent.config.points import enip_points, modbus_points, opcua_points, s7_points
from edge_agent.config.s7_profile import S7Profile

__all__ = ["meta_messages", "profile_meta"]


def profile_meta(loaded: LoadedConfig) -> dict[str, dict[str, wire.TagMeta]]:
    """Machine → tag → meta for every configured device: unit, heartbeat and, for tags sent on
    every poll, the poll interval (what the hub's completeness view expects)."""
    out: dict[str, dict[str, wire.TagMeta]] = {}
    for d in loaded.devices:
        profile = d.profile
        tags: dict[str, wire.TagMeta] = {}
        limits = {t.name: t.limits for t in profile.tags}
        if isinstance(profile, ModbusProfile):
            for p in modbus_points(profile):
                every = p.poll_ms if p.deadband is None else None
                tags[p.name] = wire.TagMeta(
                    unit=p.unit, max_interval_ms=p.max_interval_ms, poll_ms=every,
                    limits=limits[p.name], writable=_writable(p.writable, p.min, p.max),
                )  # fmt: skip
        elif isinstance(profile, S7Profile | EnipProfile):
            points = s7_points(profile) if isinstance(profile, S7Profile) else enip_points(profile)
            for q in points:
                every = q.poll_ms if q.deadband is None else None
                tags[q.name] = wire.TagMeta(
                    unit=q.unit, max_interval_ms=q.max_interval_ms, poll_ms=every,
                    limits=limits[q.name], writable=_writable(q.writable, q.min, q.max),
                )  # fmt: skip
        else:
            for o in opcua_points(profile):
                every = o.sampling_ms if o.mode == "poll" and o.sampling_ms > 0 else None
                tags[o.tag] = wire.TagMeta(
                    unit=o.unit, max_interval_ms=o.max_interval_ms, poll_ms=every,
                    limits=limits[o.tag], writable=_writable(o.writable, o.min, o.max),
                )  # fmt: skip
        out[d.device.machine] = tags
    return out


def _writable(writable: bool, low: float | None, high: float | None) -> wire.WriteRange | None:
    return wire.WriteRange(min=low, max=high) if writable else None


def meta_messages(
    site: str,
    line: str,
    machines: Iterable[str],
    meta: Mapping[str, Mapping[str, wire.TagMeta]],
    ts_ms: int,
) -> dict[str, bytes]:
    """Topic → payload of the retained meta message of every machine (empty `tags` if none)."""
    return {
        wire.meta_topic(site, line, machine): wire.encode_meta(ts_ms, meta.get(machine, {}))
        for machine in machines
    }
