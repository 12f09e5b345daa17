"""Pydantic models of wire contract v1: the JSON bodies, and what parsing hands back.

A `…Body` model is exactly what travels in an MQTT payload. `Telemetry`, `Status`, `AgentStatus`
and `Receipt` add the identity that travels in the topic, so a consumer never re-parses it.
Scalars are strict (JSON `true` is never 1, `1.0` is never a ts); containers are lax, so Python
callers may pass lists where tuples are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    model_validator,
)
from pydantic_core import PydanticCustomError

from wire.limits import (
    DIGEST_PATTERN,
    EVENT_ID_PATTERN,
    MAX_ABS_NUMBER,
    MAX_DESCRIPTION_CHARS,
    MAX_EVENT_FIELDS,
    MAX_EVENT_LABEL_CHARS,
    MAX_EVENTS,
    MAX_META_TAGS,
    MAX_READINGS,
    MAX_SEQ,
    MAX_STRING_BYTES,
    MAX_TS,
    MAX_UNIT_CHARS,
    RESERVED_SITES,
    SEGMENT_PATTERN,
    TAG_PATTERN,
    VERSION,
)

__all__ = [
    "AgentStatus",
    "AgentStatusBody",
    "DeviceStatus",
    "EventState",
    "Limits",
    "MachineEvent",
    "MachineEvents",
    "MachineEventsBody",
    "Meta",
    "MetaBody",
    "Quality",
    "Reading",
    "Receipt",
    "ReceiptBody",
    "State",
    "Status",
    "StatusBody",
    "TagMeta",
    "Telemetry",
    "TelemetryBody",
    "Value",
]


def _storable_number(number: float) -> float:
    if not -MAX_ABS_NUMBER <= number <= MAX_ABS_NUMBER:
        raise PydanticCustomError("not_finite", "is beyond ±1e300", {})
    return number


def _no_nul(text: str) -> str:
    # C strings from PLCs arrive padded with NULs; PostgreSQL text cannot hold U+0000 at all.
    if "\x00" in text:
        raise PydanticCustomError(
            "nul_in_string", "holds U+0000 (NUL) at character {at}", {"at": text.index("\x00")}
        )
    return text


def _utf8_at_most(text: str) -> str:
    # max_length counts characters; the limit is in bytes, and only long strings can break it.
    if len(text) * 4 > MAX_STRING_BYTES and len(text.encode()) > MAX_STRING_BYTES:
        raise PydanticCustomError(
            "string_too_long",
            "is {size} bytes of UTF-8, the limit is {limit}",
            {"size": len(text.encode()), "limit": MAX_STRING_BYTES},
        )
    return text


def _not_reserved(site: str) -> str:
    if site in RESERVED_SITES:
        raise PydanticCustomError(
            "reserved_site", '"{site}" is reserved for ms/v1/{site}/…', {"site": site}
        )
    return site


def _ordered(ranges: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    for index, (first, last) in enumerate(ranges):
        if first > last:
            raise PydanticCustomError(
                "bad_range",
                "range {index} is [{first}, {last}]: first must not exceed last",
                {"index": index, "first": first, "last": last},
            )
    return ranges


Segment = Annotated[str, Field(strict=True, pattern=f"^{SEGMENT_PATTERN}$")]
Site = Annotated[Segment, AfterValidator(_not_reserved)]
Tag = Annotated[str, Field(strict=True, pattern=f"^{TAG_PATTERN}$")]
Text = Annotated[
    str,
    Field(strict=True, max_length=MAX_STRING_BYTES),
    AfterValidator(_utf8_at_most),
    AfterValidator(_no_nul),
]
Ts = Annotated[int, Field(strict=True, ge=0, le=MAX_TS)]
Seq = Annotated[int, Field(strict=True, ge=0, le=MAX_SEQ)]
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_SEQ)]
Version = Annotated[int, Field(strict=True, ge=VERSION, le=VERSION)]  # Literal[1] accepts true
# bool first: it must never become 1. Integers are 64-bit; a wider JSON integer arrives as float.
Value = (
    StrictBool
    | Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)]
    | Annotated[float, Field(strict=True, allow_inf_nan=False), AfterValidator(_storable_number)]
    | Text
)
Quality = Literal["good", "uncertain", "bad"]
State = Literal["online", "offline", "faulted"]
SeqRanges = Annotated[tuple[tuple[Seq, Seq], ...], Field(min_length=1), AfterValidator(_ordered)]
Digest = Annotated[str, Field(strict=True, pattern=f"^{DIGEST_PATTERN}$")]
# (seq, digest of the payload stored for it); a seq may appear twice when two different payloads
# claimed it (a republish is byte-identical, so that means someone else sent one).
BatchDigests = tuple[tuple[Seq, Digest], ...]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Reading(_Model):
    """One reading: `ts` epoch ms UTC at the source, `v` number/bool/string, `q` quality class."""

    tag: Tag
    ts: Ts
    v: Value
    q: Quality = "good"


# A W3C `traceparent` (docs/tracing.md) for publishers that cannot send MQTT v5 user
# properties. Not judged beyond its type: a receiver ignores an invalid one (W3C Trace Context
# §3.2.2) and never refuses a batch for it.
TraceField = Annotated[str | None, Field(max_length=1024)]


class TelemetryBody(_Model):
    """Payload of `ms/v1/{site}/{line}/{machine}/telemetry`."""

    v: Version
    src: Segment
    seq: Seq
    trace: TraceField = None
    readings: Annotated[tuple[Reading, ...], Field(min_length=1, max_length=MAX_READINGS)]


class Telemetry(_Model):
    """A validated telemetry batch with the machine identity taken from its topic."""

    site: Site
    line: Segment
    machine: Segment
    src: Segment
    seq: Seq
    readings: Annotated[tuple[Reading, ...], Field(min_length=1, max_length=MAX_READINGS)]
    trace: TraceField = None  # the `traceparent` the payload carried


class _MachineState(_Model):
    state: State
    ts: Ts
    detail: Text | None = None


class StatusBody(_MachineState):
    """Payload of `ms/v1/{site}/{line}/{machine}/status` (retained; the last will says offline)."""

    v: Version


class Status(_MachineState):
    """A machine's status with its identity taken from the topic."""

    site: Site
    line: Segment
    machine: Segment


Rate = Annotated[float, Field(ge=0, allow_inf_nan=False)]
IntervalMs = Annotated[int, Field(strict=True, ge=1, le=86_400_000)]  # at most a day
DeviceState = Literal["connecting", "online", "offline"]

# How many minutes of per-minute production an agent repeats in each status message: a status
# is sent every 10 s, so a minute is reported several times and one lost message loses nothing.
MAX_PRODUCED_MINUTES = 60
MAX_DROP_SPANS = 10


class DeviceStatus(_Model):
    """One device (machine) as its agent sees it; every field optional for older agents."""

    online: StrictBool | None = None
    # connecting (no answer yet), online, offline: the agent's one judgement of the device
    # (docs/devices.md); `since` and `why` say when the current outage began and why, in words.
    state: DeviceState | None = None
    since: Ts | None = None
    why: Text | None = None
    last_good_ts: Ts | None = None  # source timestamp of the newest good reading
    errors: Count | None = None  # failed polls/reads since the agent started
    dropped: Count | None = None  # readings dropped by buffer bounds since the agent started
    # [minute start (epoch ms, by reading ts), readings produced in it]: the hub compares this
    # with what it stored per minute to show completeness.
    produced: Annotated[tuple[tuple[Ts, Count], ...], Field(max_length=MAX_PRODUCED_MINUTES)] = ()
    # [first ts, last ts, count] of readings the agent's buffer dropped (full, or too old), newest
    # spans since it started: the hub names them as the reason of those minutes' gap.
    drops: Annotated[tuple[tuple[Ts, Ts, Count], ...], Field(max_length=MAX_DROP_SPANS)] = ()


class _AgentHealth(_Model):
    state: State
    ts: Ts
    version: Annotated[str, Field(strict=True, max_length=64)] | None = None
    # Where the agent's machines live: `devices` keys are machine names within this site/line.
    site: Site | None = None
    line: Segment | None = None
    buffer_depth: Count | None = None  # readings buffered and not yet receipted
    buffer_age_ms: Count | None = None  # age of the oldest buffered reading
    buffer_bytes: Count | None = None  # bytes the buffer file holds for unreceipted readings
    dropped: Count | None = None  # readings dropped by buffer bounds since the agent started
    poll_errors: Mapping[Segment, Count] = Field(default_factory=dict, max_length=10_000)
    publish_rate: Rate | None = None  # readings/s
    backlog: Count | None = None  # readings waiting to be published (not yet sent)
    backlog_age_ms: Count | None = None  # age of the oldest unsent reading
    drain_rate: Rate | None = None  # backlog readings/s published
    eta_s: Rate | None = None  # seconds until the backlog is drained at the current rate
    devices: Mapping[Segment, DeviceStatus] = Field(default_factory=dict, max_length=10_000)


class AgentStatusBody(_AgentHealth):
    """Payload of `ms/v1/agents/{agent_id}/status`; a last will carries only v, state and ts."""

    v: Version


class AgentStatus(_AgentHealth):
    """An agent's health with its id taken from the topic."""

    agent_id: Segment


class Limits(_Model):
    """A tag's plausible range in engineering units: values past it are wrong, and the hub's
    alerts fire on them (docs/alerts.md "Profile limits")."""

    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _a_range(self) -> Limits:
        if self.low is None and self.high is None:
            raise ValueError("give `low`, `high` or both")
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError("`low` must be below `high`")
        return self


class WriteRange(_Model):
    """A tag commands may write (docs/commands.md), with the range a written number must keep
    (either bound may be absent)."""

    min: float | None = None
    max: float | None = None


class TagMeta(_Model):
    """What a tag's values mean: engineering unit and a one-line description (both optional)."""

    unit: (
        Annotated[
            str,
            Field(strict=True, min_length=1, max_length=MAX_UNIT_CHARS),
            AfterValidator(_no_nul),
        ]
        | None
    ) = None
    description: (
        Annotated[
            str,
            Field(strict=True, min_length=1, max_length=MAX_DESCRIPTION_CHARS),
            AfterValidator(_no_nul),
        ]
        | None
    ) = None
    # The tag is sent at least this often, changed or not (its heartbeat): the hub calls the
    # machine stale only after that long without a reading (docs/devices.md).
    max_interval_ms: IntervalMs | None = None
    # The tag is sent on every poll, this often: what completeness expects of it. Absent for a
    # tag sent only on change (deadband, OPC-UA subscription).
    poll_ms: IntervalMs | None = None
    # The plausible range from the device profile: threshold alerts unless a rule overrides.
    limits: Limits | None = None
    # Present when commands may write the tag (the profile says `writable: true`).
    writable: WriteRange | None = None


TagMetas = Annotated[Mapping[Tag, TagMeta], Field(max_length=MAX_META_TAGS)]


class MetaBody(_Model):
    """Payload of `ms/v1/{site}/{line}/{machine}/meta` (retained): the machine's whole tag list.

    Each message replaces the previous one: a tag left out has no unit or description any more.
    """

    v: Version
    ts: Ts
    tags: TagMetas


class Meta(_Model):
    """A machine's tag metadata with its identity taken from the topic."""

    site: Site
    line: Segment
    machine: Segment
    ts: Ts
    tags: TagMetas


class ReceiptBody(_Model):
    """Payload of `ms/v1/receipts/{src}`: the batches of `src` now committed to PostgreSQL.

    `seqs` are their numbers as inclusive ranges; `sha256` names each one with the digest of the
    payload the hub stored for it, so a publisher deletes a batch only when the hub stored exactly
    what it sent (docs/wire.md "Receipts").
    """

    v: Version
    seqs: SeqRanges
    sha256: BatchDigests = ()


class Receipt(_Model):
    """A receipt with the publisher id taken from its topic."""

    src: Segment
    seqs: SeqRanges
    sha256: BatchDigests = ()

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, int) and any(first <= seq <= last for first, last in self.seqs)


EventState = Literal["active", "acked", "confirmed", "cleared"]
_Label = Annotated[
    str,
    Field(strict=True, min_length=1, max_length=MAX_EVENT_LABEL_CHARS),
    AfterValidator(_no_nul),
]


class MachineEvent(_Model):
    """One thing that happened at a machine: an alarm raised or cleared, a state change.

    `id` is stable per occurrence (every transition of one alarm carries the same id, with its
    own `ts` and `state`); `severity` is OPC-UA's 1-1000; `state` is set for conditions only.
    """

    id: Annotated[str, Field(strict=True, pattern=f"^{EVENT_ID_PATTERN}$")]
    ts: Ts
    source: _Label  # the node or tag it is about
    type: _Label  # e.g. "alarm", "OffNormalAlarmType", "guard_open"
    severity: Annotated[int, Field(strict=True, ge=1, le=1000)]
    message: Text = ""
    state: EventState | None = None
    fields: Annotated[Mapping[Tag, Value], Field(max_length=MAX_EVENT_FIELDS)] = Field(
        default_factory=dict
    )


MachineEventList = Annotated[tuple[MachineEvent, ...], Field(min_length=1, max_length=MAX_EVENTS)]


class MachineEventsBody(_Model):
    """Payload of `ms/v1/{site}/{line}/{machine}/events`: a batch, receipted like telemetry."""

    v: Version
    src: Segment
    seq: Seq
    events: MachineEventList


class MachineEvents(_Model):
    """A validated events batch with the machine identity taken from its topic."""

    site: Site
    line: Segment
    machine: Segment
    src: Segment
    seq: Seq
    events: MachineEventList
