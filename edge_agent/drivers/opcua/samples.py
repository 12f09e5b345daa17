"""Build `Sample`s from OPC-UA DataValues (pure: the fallback time is passed in)."""

from __future__ import annotations

from typing import Any

from edge_agent.drivers.base import Sample
from edge_agent.drivers.opcua.quality import quality_of
from edge_agent.drivers.opcua.values import epoch_ms, wire_value

__all__ = ["bad_sample", "sample_from_datavalue"]


def sample_from_datavalue(tag: str, data_value: Any, now_ms: int) -> Sample:
    """Source timestamp first, then server timestamp, then `now_ms`; status code ⇒ quality."""
    stamp = data_value.SourceTimestamp or data_value.ServerTimestamp
    status = data_value.StatusCode
    variant = data_value.Value
    return Sample(
        tag=tag,
        ts=epoch_ms(stamp) if stamp is not None else now_ms,
        value=wire_value(variant.Value if variant is not None else None),
        quality=quality_of(status.value) if status is not None else "good",
    )


def bad_sample(tag: str, now_ms: int) -> Sample:
    """A point the server could not give us (unresolved browse path, failed read)."""
    return Sample(tag=tag, ts=now_ms, value=None, quality="bad")
