"""The numbers of wire contract v1 (ARCHITECTURE.md "Wire contract v1"); the hub enforces them."""

from __future__ import annotations

__all__ = [
    "DIGEST_PATTERN",
    "EVENT_ID_PATTERN",
    "MAX_ABS_NUMBER",
    "MAX_DESCRIPTION_CHARS",
    "MAX_EVENTS",
    "MAX_EVENT_FIELDS",
    "MAX_EVENT_LABEL_CHARS",
    "MAX_FUTURE_MS",
    "MAX_META_TAGS",
    "MAX_PAST_MS",
    "MAX_PAYLOAD_BYTES",
    "MAX_READINGS",
    "MAX_SEQ",
    "MAX_STRING_BYTES",
    "MAX_TS",
    "MAX_UNIT_CHARS",
    "RESERVED_SITES",
    "SEGMENT_PATTERN",
    "TAG_PATTERN",
    "UUID_PATTERN",
    "VERSION",
]

VERSION = 1

MAX_READINGS = 10_000
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_STRING_BYTES = 1024  # UTF-8 bytes, not characters: what storage and Kafka actually carry
# The largest magnitude of a number reading. A series holds at most 60,000 readings a minute and
# 3.6 M an hour (one per millisecond: `ts` is part of a reading's identity), so the sums behind
# the minute and hour averages stay below 3.6e306, inside a double: they can never overflow.
MAX_ABS_NUMBER = 1e300

# Tag metadata (`…/meta`): as many tags as a batch may carry readings; a unit is a short symbol
# ("°C", "m³/h"), as a device profile allows; a description is one line for a tooltip.
MAX_META_TAGS = 10_000
MAX_UNIT_CHARS = 32
MAX_DESCRIPTION_CHARS = 256

# Machine events (`…/events`): far fewer than readings — an alarm storm of a whole line fits one
# batch. Extra fields per event as a profile or an OPC-UA select clause names them; a source or a
# type is a node path or an event type name (OPC-UA's can be long).
MAX_EVENTS = 1000
MAX_EVENT_FIELDS = 64
MAX_EVENT_LABEL_CHARS = 256
# An event id is stable per occurrence: a condition's id, an OPC-UA EventId in hex, or
# "{machine tag}:{edge}:{ts}"; URL- and topic-safe so tools can put it in a path.
EVENT_ID_PATTERN = r"[A-Za-z0-9_.:-]{1,128}"

# Readings older than the window are what a forgotten buffer replays; newer ones are a wrong clock.
MAX_PAST_MS = 30 * 24 * 60 * 60 * 1000
MAX_FUTURE_MS = 5 * 60 * 1000

# 9999-12-31T23:59:59.999Z: beyond it no datetime type round-trips; a ts there is a unit mistake.
MAX_TS = 253_402_300_799_999
# PostgreSQL bigint, so a seq survives every store it passes through.
MAX_SEQ = 2**63 - 1

SEGMENT_PATTERN = r"[A-Za-z0-9_-]{1,64}"
# A batch digest in a receipt: the first 128 bits of SHA-256 of the payload bytes, lower-case hex.
# 128 bits: forging a payload with the same digest (a second preimage) stays out of reach.
DIGEST_PATTERN = r"[0-9a-f]{32}"
# Tags are not topic segments, so third-party dotted names ("inlet.temp") are allowed.
TAG_PATTERN = r"[A-Za-z0-9_.-]{1,128}"
# A command id: a UUID in lower-case canonical form (ids are compared as text: one spelling).
UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# `ms/v1/agents/...` and `ms/v1/receipts/...` share the site position of the topic tree.
RESERVED_SITES = frozenset(
    {"agents", "receipts", "hub"}
)  # "hub": the hub's own announcements (drain budget)
