"""What the ingest hands to storage in one transaction, and what storage reads back.

Plain data, no I/O. Timestamps are integer epoch milliseconds UTC, as on the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

__all__ = [
    "DEAD_LETTER_PAYLOAD_LIMIT",
    "QUALITY_CODES",
    "AgentStatusUpdate",
    "CommandResultUpdate",
    "CompactReading",
    "DeadLetter",
    "EventBatch",
    "EventRow",
    "MachineMetaUpdate",
    "MachineStatusUpdate",
    "ReadingLike",
    "RollupRow",
    "SeriesKey",
    "SparkplugBirth",
    "StoredReading",
    "TelemetryBatch",
    "WriteBatch",
    "WriteResult",
    "encode_value",
]

# Dead letters keep the raw payload up to the wire contract's payload limit (1 MiB), so an
# oversized message is kept as far as it would have been valid, plus its real size.
DEAD_LETTER_PAYLOAD_LIMIT = 1024 * 1024

# OPC-UA status classes in order of trust; stored as smallint.
QUALITY_CODES: dict[str, int] = {"good": 0, "uncertain": 1, "bad": 2}


class ReadingLike(Protocol):
    """A validated reading (`wire.Reading` fits): tag, ts (ms), v (float/int/bool/str), q."""

    @property
    def tag(self) -> str: ...
    @property
    def ts(self) -> int: ...
    @property
    def v(self) -> float | int | bool | str: ...
    @property
    def q(self) -> str: ...


class CompactReading(NamedTuple):
    """A validated reading in compact form (a tuple, not a model: the window holds many)."""

    tag: str
    ts: int
    v: float | int | bool | str
    q: str


class SeriesKey(NamedTuple):
    """Identity of a series: the reading's identity minus its timestamp."""

    site: str
    line: str
    machine: str
    tag: str


@dataclass(frozen=True, slots=True)
class TelemetryBatch:
    """One validated telemetry message: a publisher's batch for one machine."""

    site: str
    line: str
    machine: str
    src: str
    seq: int
    readings: Sequence[ReadingLike]
    # wire.batch_digest of the payload as received: the receipt names the batch by it, so only
    # the publisher that sent these very bytes deletes anything on it.
    digest: str = ""
    # The readings of the same payload the hub cannot store (each breaks a rule of its own),
    # committed to the dead-letter store in the same transaction as `readings`.
    refused: DeadLetter | None = None
    # False for a publisher that takes no receipts (a Sparkplug edge node: src/seq only
    # label the batch in Kafka).
    receipt: bool = True
    # False for history (Sparkplug `is_historical`): stored and bridged, never shown as live.
    live: bool = True
    # W3C traceparent: as received (MQTT v5 user property, else the payload's `trace`), then,
    # when the hub traces, its own outbox span's, which the Kafka relay continues.
    trace: str | None = None


class EventRow(NamedTuple):
    """One machine event as stored; its identity is (site, line, machine, id, ts)."""

    id: str
    ts: int
    source: str
    type: str
    severity: int
    message: str
    state: str | None
    fields: str  # the event's extra fields, as a JSON object


@dataclass(frozen=True, slots=True)
class EventBatch:
    """One validated events message: a publisher's batch of a machine's events, receipted by
    (src, seq, digest) like telemetry."""

    site: str
    line: str
    machine: str
    src: str
    seq: int
    events: Sequence[EventRow]
    digest: str = ""
    refused: DeadLetter | None = None  # the events of the same payload the hub cannot store
    received_at: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the hub refused, kept for an operator to inspect."""

    topic: str
    payload: bytes
    reason: str
    message: str
    received_at: int
    src: str | None = None
    # The refused batch's seq when it can be read: a committed dead letter is receipted like a
    # stored batch, so the publisher stops resending what the hub has set aside.
    seq: int | None = None
    digest: str = ""  # wire.batch_digest of the whole payload as received (for the receipt)
    received_size: int | None = None  # set when `payload` is only the head of what arrived

    @property
    def payload_size(self) -> int:
        """Size of the payload as received (the stored copy may be truncated)."""
        return len(self.payload) if self.received_size is None else self.received_size


@dataclass(frozen=True, slots=True)
class MachineStatusUpdate:
    """A machine's online/offline/faulted state as published on its status topic."""

    site: str
    line: str
    machine: str
    state: str
    ts: int | None
    detail: str | None
    payload: str
    received_at: int


@dataclass(frozen=True, slots=True)
class MachineMetaUpdate:
    """A machine's tag metadata from its retained meta topic; replaces the machine's previous."""

    site: str
    line: str
    machine: str
    ts: int
    # (tag, unit, description) for every tag the message names.
    tags: Sequence[tuple[str, str | None, str | None]]
    payload: str
    received_at: int
    # The longest a healthy machine stays without sending anything: its tags' shortest poll
    # interval or heartbeat (`wire.quiet_ms`); None when the message declares neither.
    quiet_ms: int | None = None
    # Readings per minute its tags sent on every poll add up to (`wire.scheduled_per_minute`).
    scheduled_per_minute: float | None = None
    # (tag, low, high) of every tag its profile gives a plausible range (docs/alerts.md).
    limits: Sequence[tuple[str, float | None, float | None]] = ()
    # (tag, min, max) of every tag commands may write (docs/commands.md).
    writable: Sequence[tuple[str, float | None, float | None]] = ()


@dataclass(frozen=True, slots=True)
class AgentStatusUpdate:
    """An agent's health as published on `ms/v1/agents/{id}/status`."""

    agent_id: str
    state: str
    ts: int | None
    version: str | None
    buffer_depth: int | None
    drops: int | None
    payload: str
    received_at: int
    # Where the agent's machines live; None from older agents, whose production is not stored.
    site: str | None = None
    line: str | None = None
    # (machine, minute start ms, readings produced) as reported: completeness's `expected`.
    produced: Sequence[tuple[str, int, int]] = ()
    # Machines the agent names (its `devices` and `poll_errors`): which agent polls which machine.
    devices: Sequence[str] = ()
    # (machine, first ts, last ts, readings) its buffer dropped: outages of kind `drop`.
    drop_spans: Sequence[tuple[str, int, int, int]] = ()
    # Readings/s it publishes live (its publish rate less its backlog's), when it says.
    live_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class CommandResultUpdate:
    """An agent's answer to a command (`…/cmd/res`); `previous`/`read_back` as JSON text."""

    agent_id: str
    id: str
    status: str
    detail: str
    ts: int
    previous: str | None
    read_back: str | None
    received_at: int


@dataclass(frozen=True, slots=True)
class SparkplugBirth:
    """What a Sparkplug edge node or device declared in its latest birth: kept so that data
    sent by alias (and redelivered after a hub restart) still names its metrics."""

    group: str
    node: str
    device: str  # "" for the edge node itself
    bd_seq: int | None  # the node birth's bdSeq (an NDEATH must match it to count)
    # (metric name, alias or None, datatype or None) in the order the birth listed them.
    metrics: Sequence[tuple[str, int | None, int | None]]
    received_at: int


@dataclass(frozen=True, slots=True)
class WriteBatch:
    """Everything committed in one transaction: telemetry, dead letters, status and meta."""

    telemetry: Sequence[TelemetryBatch] = ()
    dead_letters: Sequence[DeadLetter] = ()
    machines: Sequence[MachineStatusUpdate] = ()
    agents: Sequence[AgentStatusUpdate] = ()
    metas: Sequence[MachineMetaUpdate] = ()
    results: Sequence[CommandResultUpdate] = ()
    births: Sequence[SparkplugBirth] = ()
    events: Sequence[EventBatch] = ()
    readings_count: int = field(default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "readings_count", sum(len(t.readings) for t in self.telemetry))


@dataclass(frozen=True, slots=True)
class WriteResult:
    """How many readings of a committed batch were new, and how many were already stored."""

    inserted: int
    duplicates: int


class StoredReading(NamedTuple):
    """One row of `readings`, as read back."""

    ts: int
    value: float | None
    value_text: str | None
    quality: int


@dataclass(frozen=True, slots=True)
class RollupRow:
    """One minute or hour bucket of a series."""

    bucket: int
    min: float
    max: float
    sum: float
    count: int
    last_ts: int
    last_value: float

    @property
    def avg(self) -> float:
        """Mean of the bucket (sum/count, so buckets merge exactly)."""
        return self.sum / self.count


Resolution = Literal["minute", "hour"]


def encode_value(v: float | int | bool | str) -> tuple[float | None, str | None]:
    """Map a wire value to (value, value_text): numbers, bools as 0/1 + 'true'/'false', strings."""
    # bool before int: bool is a subclass of int in Python.
    if isinstance(v, bool):
        return (1.0 if v else 0.0), ("true" if v else "false")
    if isinstance(v, int | float):
        return float(v), None
    return None, v
