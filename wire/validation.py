"""Run a body model over raw payload bytes and turn every failure into one PayloadError (pure)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from wire.errors import PayloadError, Reason, shorten
from wire.limits import (
    MAX_PAYLOAD_BYTES,
    MAX_READINGS,
    MAX_STRING_BYTES,
    SEGMENT_PATTERN,
    TAG_PATTERN,
    UUID_PATTERN,
)

__all__ = ["field_path", "payload_error", "validate_payload"]

M = TypeVar("M", bound=BaseModel)

# Member tags pydantic appends to the location of each failed union alternative (`v` of a reading).
_UNION_TAGS = frozenset({"bool", "int", "float", "str", "constrained-int", "constrained-str"})
_BOUNDS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})


def validate_payload(model: type[M], payload: object) -> M:
    """Validate `payload` (JSON bytes) as `model`; raise PayloadError, never anything else."""
    if not isinstance(payload, bytes | bytearray):
        raise PayloadError("bad_json", f"payload: expected bytes, got {type(payload).__name__}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        message = f"payload: {len(payload)} bytes, the limit is {MAX_PAYLOAD_BYTES}"
        raise PayloadError("too_large", message, "payload")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise payload_error(exc, payload) from None


def payload_error(exc: ValidationError, payload: bytes | bytearray | None = None) -> PayloadError:
    """Map a pydantic ValidationError to the PayloadError of its first offending field."""
    errors = exc.errors(include_url=False)
    chosen = errors[0]
    for error in errors:
        # With 10,001 readings the count is the story, not some reading's bad field.
        if error["type"] == "too_long" and _path(error["loc"]) == ("readings",):
            chosen = error
    path = _path(chosen["loc"])
    group = [error for error in errors if _path(error["loc"]) == path]
    types = {error["type"] for error in group}
    field = field_path(path)
    if "json_invalid" in types:
        return _json_error(chosen, payload)
    reason = _reason(path, types)
    return PayloadError(reason, f"{field}: {_describe(reason, path, group)}", field)


def field_path(path: tuple[str | int, ...]) -> str:
    """`("readings", 3, "ts")` → `readings[3].ts`; the whole payload is `payload`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "payload"


def _path(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # Validator-wrapped alternatives are tagged like "function-after[_utf8_at_most(), ...]".
    return tuple(
        part for part in loc if not (isinstance(part, str) and (part in _UNION_TAGS or "[" in part))
    )


# One return per reason code reads as the table it is.
def _reason(path: tuple[str | int, ...], types: set[str]) -> Reason:  # noqa: PLR0911
    last = path[-1] if path else None
    if path == ("v",):
        return "bad_version"
    if "finite_number" in types or "not_finite" in types:
        return "not_finite"
    if "nul_in_string" in types:
        return "nul_in_string"
    if "string_too_long" in types:
        return "string_too_long"
    if path == ("readings",) and "too_long" in types:
        return "too_many_readings"
    if "bad_range" in types:
        return "bad_range"
    if last == "q" and "literal_error" in types:
        return "bad_quality"
    if last == "ts" and types & _BOUNDS:
        return "ts_out_of_range"
    return "bad_field"


# Reasons whose message does not depend on what pydantic said.
_FIXED: dict[Reason, str] = {
    "bad_version": "must be the integer 1 (wire contract v1)",
    "bad_quality": "must be 'good', 'uncertain' or 'bad'",
    "not_finite": "must be a finite number within ±1e300 (no NaN or Infinity)",
    "nul_in_string": "must not hold U+0000 (NUL), which storage cannot keep: strip C-string"
    " padding before sending",
    "ts_out_of_range": "must be epoch milliseconds UTC between 1970 and 9999",
}
_BY_TYPE = {"missing": "is required", "extra_forbidden": "is not a field of wire contract v1"}
# Said the way a technician fixes it, instead of as a regular expression.
_PATTERNS = {
    f"^{SEGMENT_PATTERN}$": "must be 1-64 characters: letters, digits, _ or -",
    f"^{TAG_PATTERN}$": "must be 1-128 characters: letters, digits, _, . or -",
    f"^{UUID_PATTERN}$": "must be a UUID in lower-case hex, 8-4-4-4-12 digits",
}
# Raised by wire.models and wire.commands, already worded.
_OWN_TYPES = frozenset({"bad_range", "reserved_site", "incomplete_command"})


# One return per kind of message reads as the table it is.
def _describe(  # noqa: PLR0911
    reason: Reason, path: tuple[str | int, ...], group: list[ErrorDetails]
) -> str:
    first = group[0]
    got = first["input"]
    if first["type"] in _BY_TYPE:
        return _BY_TYPE[first["type"]]
    if reason in _FIXED:
        return f"{_FIXED[reason]}, got {shorten(got)}"
    if reason == "string_too_long":
        ctx = first.get("ctx", {})
        if ctx.get("max_length", MAX_STRING_BYTES) != MAX_STRING_BYTES and isinstance(got, str):
            # Meta's unit and description are limited in characters, as profiles write them.
            return f"is {len(got)} characters, the limit is {ctx['max_length']}"
        limit = ctx.get("limit", ctx.get("max_length", MAX_STRING_BYTES))
        size = len(got.encode()) if isinstance(got, str) else "too many"
        return f"is {size} bytes of UTF-8, the limit is {limit}"
    if reason == "too_many_readings":
        return f"{len(got)} readings, the limit is {MAX_READINGS}"
    if first["type"] in _OWN_TYPES:
        return first["msg"]
    if first["type"] == "string_pattern_mismatch":
        pattern = str(first.get("ctx", {}).get("pattern"))
        return f"{_PATTERNS.get(pattern, first['msg'])}, got {shorten(got)}"
    if path == ():
        return f"must be a JSON object, got {_json_kind(got)}"
    if len(group) > 1:  # every union alternative failed: a reading's value
        if {error["type"] for error in group} & _BOUNDS:
            return f"{shorten(got)} is outside the 64-bit integer range"
        return f"must be a number, a bool or a string, got {_json_kind(got)}"
    if path[-1] == "ts" and first["type"] == "int_type":
        return f"must be an integer: epoch milliseconds UTC, got {shorten(got)}"
    return f"{first['msg'][0].lower()}{first['msg'][1:]}, got {shorten(got)}"


def _json_error(error: ErrorDetails, payload: bytes | bytearray | None) -> PayloadError:
    if payload is not None:
        try:
            payload.decode()
        except UnicodeDecodeError as exc:
            return PayloadError("bad_utf8", f"payload: not UTF-8 at byte {exc.start}", "payload")
    # pydantic says "Invalid JSON: <jiter's reason at line L column C>".
    return PayloadError("bad_json", f"payload: {error['msg']}", "payload")


def _json_kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a bool", int: "a number"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, float) else type(value).__name__)
