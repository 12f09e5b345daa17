"""What a write must pass before any driver sends it (pure): the profile's `writable`, the
value's kind, and `min`/`max` in engineering units. Shared by every protocol, so a command from
the hub and `edge-agent write` on the line PC are refused for the same reasons, in the same words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from edge_agent.drivers.base import Value
from edge_agent.errors import WriteRefused

__all__ = ["ValueKind", "check_write", "no_such_tag", "value_kind"]

ValueKind = Literal["bool", "number", "string"]


def value_kind(type_: str) -> ValueKind:
    """What kind of value a tag of a protocol's `type_` takes ("bool", "string", else numbers)."""
    return "bool" if type_ == "bool" else "string" if type_ == "string" else "number"


def check_write(
    tag: str,
    value: Value,
    kind: ValueKind,
    *,
    writable: bool,
    min: float | None = None,
    max: float | None = None,
) -> Value:
    """`value` as the tag takes it; `WriteRefused` saying why when it may not be written."""
    if not writable:
        raise WriteRefused(f"{tag} is not writable: its profile does not say writable: true")
    if value is None:
        raise WriteRefused(f"{tag}: no value to write")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise WriteRefused(f"{tag} takes true or false, not {value!r}")
    if kind == "string":
        if not isinstance(value, str):
            raise WriteRefused(f"{tag} takes text, not {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WriteRefused(f"{tag} takes a number, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise WriteRefused(f"{tag} takes a finite number, not {value!r}")
    if min is not None and value < min:
        raise WriteRefused(f"{value:g} is below {tag}'s min {min:g}")
    if max is not None and value > max:
        raise WriteRefused(f"{value:g} is above {tag}'s max {max:g}")
    return value


def no_such_tag(device: str, tag: str, tags: Sequence[str]) -> WriteRefused:
    """The refusal for a tag the device's profile does not have, naming the ones it has."""
    more = ", …" if len(tags) > 20 else ""
    return WriteRefused(f"{device} has no tag {tag!r}; its tags: {', '.join(tags[:20])}{more}")
