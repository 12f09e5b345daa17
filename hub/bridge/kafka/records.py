"""Outbox bodies and Kafka records (pure): how a committed batch becomes one record per reading.

The outbox body of a telemetry batch is one pre-encoded JSON fragment per reading, in ts order,
separated by newlines (JSON text never contains a raw newline):

    "tag":"spindle_temp","ts":1763900000123,"v":85.4,"q":"good"

so the relay builds each record value by string concatenation, without parsing JSON:

    {"site":"s1","line":"l1","machine":"m1","tag":"spindle_temp","ts":1763900000123,"v":85.4,"q":"good"}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter

from hub.storage.model import DeadLetter, EventBatch, EventRow, ReadingLike

__all__ = [
    "DEAD_LETTER_BODY_LIMIT",
    "KIND_ALERT",
    "KIND_DEAD_LETTER",
    "KIND_EVENT",
    "KIND_TELEMETRY",
    "OutboxRow",
    "decode_cursor",
    "encode_cursor",
    "encode_dead_letter",
    "encode_event",
    "encode_readings",
    "machine_key",
    "record_prefix",
    "record_values",
    "split_batch",
]

KIND_TELEMETRY = 0
KIND_DEAD_LETTER = 1
KIND_ALERT = 2  # an alert transition's notification body (docs/alerts.md), written by the hub
KIND_EVENT = 3  # a machine event this transaction stored (docs/events.md), one per row

# A dead letter's payload travels as text up to this size: Kafka's default max.message.bytes is
# 1 MB, and the full payload stays in PostgreSQL's dead_letters table.
DEAD_LETTER_BODY_LIMIT = 64 * 1024

_by_ts = attrgetter("ts")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One outbox row as the relay reads it."""

    id: int
    kind: int
    site: str | None
    line: str | None
    machine: str | None
    src: str | None
    seq: int | None
    n: int
    body: str
    trace: str | None = None  # the writing hub span's traceparent (docs/tracing.md)
    xid: int = 0  # the writing transaction's id: with `id`, the row's place in its shard


def _value(v: float | int | bool | str) -> str:
    # bool before int (bool is an int). float repr is exactly what json.dumps writes.
    kind = type(v)
    if kind is float:
        return repr(v)
    if kind is bool:
        return "true" if v else "false"
    if kind is int:
        return str(v)
    return json.dumps(v, ensure_ascii=False)


def encode_readings(readings: Iterable[ReadingLike]) -> tuple[int, str]:
    """The outbox body for these readings (sorted by ts) and how many there are."""
    tags: dict[str, str] = {}
    parts: list[str] = []
    append = parts.append
    for r in sorted(readings, key=_by_ts):
        tag = tags.get(r.tag)
        if tag is None:
            tag = tags[r.tag] = json.dumps(r.tag, ensure_ascii=False)
        append(f'"tag":{tag},"ts":{r.ts},"v":{_value(r.v)},"q":"{r.q}"')
    return len(parts), "\n".join(parts)


def record_prefix(site: str, line: str, machine: str) -> str:
    """The start of every record value of one machine (closed by a body fragment and `}`)."""
    return f'{{"site":{json.dumps(site)},"line":{json.dumps(line)},"machine":{json.dumps(machine)},'


def machine_key(site: str, line: str, machine: str) -> bytes:
    """The Kafka record key: `site/line/machine` (all of a machine's records share a partition)."""
    return f"{site}/{line}/{machine}".encode()


def record_values(row: OutboxRow) -> Iterator[str]:
    """The JSON value of each Kafka record of a telemetry outbox row, in ts order."""
    prefix = record_prefix(row.site or "", row.line or "", row.machine or "")
    for fragment in row.body.split("\n"):
        yield prefix + fragment + "}"


def encode_event(batch: EventBatch, e: EventRow) -> str:
    """A machine event's Kafka record value (docs/kafka.md "Events")."""
    body = {
        "site": batch.site, "line": batch.line, "machine": batch.machine, "src": batch.src,
        "seq": batch.seq, "id": e.id, "ts": e.ts, "source": e.source, "type": e.type,
        "severity": e.severity, "message": e.message, "state": e.state,
        "fields": json.loads(e.fields),
    }  # fmt: skip
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def encode_dead_letter(d: DeadLetter) -> str:
    """A dead letter as one JSON object (the payload as text, truncated; see module docs)."""
    return json.dumps(
        {
            "received_at": d.received_at,
            "topic": d.topic,
            "reason": d.reason,
            "message": d.message,
            "src": d.src,
            "payload_size": d.payload_size,
            "payload": d.payload[:DEAD_LETTER_BODY_LIMIT].decode("utf-8", "replace"),
        },
        ensure_ascii=False,
    )


def encode_cursor(cursor: tuple[int, int], now_ms: int) -> bytes:
    """The relay-state record value: the (xid, id) of a shard's last outbox row whose records
    are in Kafka."""
    return json.dumps({"xid": cursor[0], "cursor": cursor[1], "at": now_ms}).encode()


def decode_cursor(value: bytes | None) -> tuple[int, int] | None:
    """The cursor of a relay-state record (None for a tombstone or a record we cannot read).
    One written before shards names only an id, of rows that all have xid 0 (migration 0021)."""
    if not value:
        return None
    try:
        body = json.loads(value)
        cursor, xid = body["cursor"], body.get("xid", 0)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(cursor, int) or not isinstance(xid, int):
        return None
    return xid, cursor


def split_batch(rows: Sequence[OutboxRow], max_readings: int) -> int:
    """How many leading rows fit in one Kafka transaction of at most `max_readings` (at least 1)."""
    total = 0
    for i, row in enumerate(rows):
        total += row.n
        if total > max_readings and i > 0:
            return i
    return len(rows)
