"""Tag metadata the agent publishes for its machines (wire `…/meta`, retained): units from profiles.

The hub shows a series' unit from the newest meta message of its machine. One message per
device lists every tag, so a unit removed from a profile disappears at the next agent start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import wire
from edge_agent.config import LoadedConfig

__all__ = ["meta_messages", "profile_meta"]


def profile_meta(loaded: LoadedConfig) -> dict[str, dict[str, wire.TagMeta]]:
    """Machine → tag → meta for every configured device (tags without a unit are left out)."""
    return {
        d.device.machine: {t.name: wire.TagMeta(unit=t.unit) for t in d.profile.tags if t.unit}
        for d in loaded.devices
    }


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
