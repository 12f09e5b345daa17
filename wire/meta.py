"""Retained tag metadata of a machine (units, descriptions): bytes ⇄ models (pure).

Like a status, a meta message is retained and may be read long after it was written, so its
`ts` is not held to the telemetry window; it only orders two messages of the same machine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pydantic import ValidationError

from wire.errors import PayloadError, shorten
from wire.limits import VERSION
from wire.models import Meta, MetaBody, TagMeta
from wire.topics import MachineTopic, parse_topic
from wire.validation import payload_error, validate_payload

__all__ = ["encode_meta", "parse_meta", "quiet_ms", "scheduled_per_minute"]


def encode_meta(ts: int, tags: Mapping[str, TagMeta]) -> bytes:
    """Serialise a machine's tag metadata (every tag it has a unit or description for)."""
    try:
        body = MetaBody(v=VERSION, ts=ts, tags=dict(tags))
    except ValidationError as exc:
        raise payload_error(exc) from None
    fields = {
        tag: meta.model_dump(mode="json", exclude_none=True) for tag, meta in body.tags.items()
    }
    doc = {"v": body.v, "ts": body.ts, "tags": fields}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def quiet_ms(tags: Mapping[str, TagMeta]) -> int | None:
    """The longest a healthy machine with these tags sends nothing: the shortest of their poll
    intervals and heartbeats; None when no tag declares either."""
    intervals = [
        ms
        for meta in tags.values()
        for ms in (meta.poll_ms, meta.max_interval_ms)
        if ms is not None
    ]
    return min(intervals, default=None)


def scheduled_per_minute(tags: Mapping[str, TagMeta]) -> float | None:
    """Readings per minute the tags sent on every poll add up to (what completeness expects of a
    machine that is online); None when no tag declares `poll_ms`."""
    polled = [meta.poll_ms for meta in tags.values() if meta.poll_ms is not None]
    return sum(60_000 / ms for ms in polled) if polled else None


def parse_meta(topic: str, payload: bytes) -> Meta:
    """Validate a machine meta message; raise PayloadError, never anything else."""
    where = parse_topic(topic)
    if not isinstance(where, MachineTopic) or where.kind != "meta":
        raise PayloadError("bad_topic", f"topic: {shorten(topic)} is not a meta topic", "topic")
    body = validate_payload(MetaBody, payload)
    return Meta.model_construct(
        site=where.site, line=where.line, machine=where.machine, ts=body.ts, tags=body.tags
    )
