"""The one exception of the wire contract: a message (or topic) that breaks it.

    ValueError
     └── PayloadError   .reason (a stable code from REASONS), .field ("readings[3].ts"),
                        str() = a message for humans that starts with the field

Parsing never raises anything else, whatever bytes arrive: the hub dead-letters on `.reason`.
"""

from __future__ import annotations

import json
from typing import Literal, get_args

__all__ = ["REASONS", "PayloadError", "Reason", "shorten"]

Reason = Literal[
    "too_large",  # payload over MAX_PAYLOAD_BYTES
    "bad_utf8",  # payload is not UTF-8
    "bad_json",  # not JSON (syntax, nesting too deep, lone surrogate escapes)
    "bad_topic",  # topic outside the v1 tree, bad segment, reserved site, wrong kind for the parser
    "bad_version",  # "v" is not the integer 1
    "bad_field",  # missing, unknown or mistyped field
    "too_many_readings",  # more than MAX_READINGS readings
    "not_finite",  # NaN, Infinity or a number beyond ±MAX_ABS_NUMBER
    "nul_in_string",  # a string holding U+0000, which PostgreSQL text cannot store
    "string_too_long",  # a string value over MAX_STRING_BYTES (UTF-8)
    "bad_quality",  # q not in good | uncertain | bad
    "ts_out_of_range",  # ts outside [now - 30 days, now + 5 min] (or not a plausible epoch ms)
    "bad_range",  # a receipt range with first > last
    "bad_protobuf",  # a Sparkplug B payload that does not parse as its protobuf schema
    "unsupported_value",  # a Sparkplug metric whose type Millstream does not store (DataSet, …)
    "unknown_alias",  # a Sparkplug metric by an alias no birth of its edge node declared
    "not_authorized",  # a src not owned by the broker identity that may publish there (hub)
]

REASONS: tuple[Reason, ...] = get_args(Reason)


class PayloadError(ValueError):
    """A message that breaks the wire contract; `reason` is stable, `str()` is for humans."""

    def __init__(self, reason: Reason, message: str, field: str | None = None) -> None:
        super().__init__(reason, message, field)
        self.reason: Reason = reason
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


def shorten(value: object, limit: int = 80) -> str:
    """The value as JSON spells it (repr if it has no JSON form), cut short for messages."""
    # Cut short so a hostile 1 MiB input does not become a 1 MiB log line.
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
