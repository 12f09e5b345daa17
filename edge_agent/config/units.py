"""Sizes and durations written the way people write them: `1GiB`, `500MB`, `7d`, `3s`, `100ms`.

Pure parsing, no I/O. Decimal prefixes (kB, MB, GB, TB) are powers of 1000 and binary
prefixes (KiB, MiB, GiB, TiB) powers of 1024 (IEC 80000-13), so `500MB` means what a disk
vendor means and `1GiB` what `ls -lh` means. A bare number is bytes or seconds.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator

__all__ = ["Duration", "format_duration", "format_size", "parse_duration", "parse_size"]

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}

# Seconds per unit; months and years are left out on purpose: their length varies.
_DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_SIZE_RE = re.compile(rf"^\s*{_NUMBER}\s*([A-Za-z]*)\s*$")
# `1h30m` is common in the wild, so a duration is one or more number+unit parts.
_DURATION_PART_RE = re.compile(rf"{_NUMBER}\s*([A-Za-z]*)\s*")


def parse_size(text: object) -> int:
    """Return the bytes in `text` (`1GiB`, `500MB`, `4096`); ValueError if unreadable."""
    if isinstance(text, bool):
        # ValueError, not TypeError: pydantic turns only ValueError into a located problem.
        raise ValueError("a size must be a number with a unit, e.g. 500MB or 1GiB, not true/false")  # noqa: TRY004
    if isinstance(text, int | float):
        if not math.isfinite(text) or text < 0 or text != int(text):
            raise ValueError(f"size {text} must be a whole number of bytes >= 0")
        return int(text)
    if not isinstance(text, str):
        raise ValueError("a size must be a number with a unit, e.g. 500MB or 1GiB")  # noqa: TRY004
    match = _SIZE_RE.match(text)
    if match is None:
        raise ValueError(f"cannot read {text!r} as a size; write e.g. 500MB, 1GiB or 1048576")
    number, unit = match.groups()
    factor = _SIZE_UNITS.get(unit.lower())
    if factor is None:
        known = ", ".join(u for u in ("B", "kB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"))
        raise ValueError(f"unknown size unit {unit!r} in {text!r}; use one of {known}")
    value = float(number) * factor
    if value != int(value):
        raise ValueError(f"{text!r} is not a whole number of bytes")
    return int(value)


def parse_duration(text: object) -> timedelta:
    """Return the duration in `text` (`7d`, `3s`, `100ms`, `1h30m`, `90`); ValueError if not."""
    if isinstance(text, bool):
        raise ValueError("a duration must be a number with a unit, e.g. 3s or 7d, not true/false")  # noqa: TRY004
    if isinstance(text, int | float):
        if not math.isfinite(text) or text < 0:
            raise ValueError(f"duration {text} must be a finite number of seconds >= 0")
        return timedelta(seconds=text)
    if not isinstance(text, str):
        raise ValueError("a duration must be a number with a unit, e.g. 3s or 7d")  # noqa: TRY004
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty duration; write e.g. 3s, 100ms or 7d")
    total = 0.0
    pos = 0
    while pos < len(stripped):
        match = _DURATION_PART_RE.match(stripped, pos)
        if match is None:
            raise ValueError(f"cannot read {text!r} as a duration; write e.g. 100ms, 3s, 5m, 7d")
        number, unit = match.groups()
        if not unit and (pos > 0 or match.end() < len(stripped)):
            raise ValueError(f"{text!r}: every part of a compound duration needs a unit")
        seconds = _DURATION_UNITS.get(unit.lower() if unit else "s")
        if seconds is None:
            known = ", ".join(_DURATION_UNITS)
            raise ValueError(f"unknown duration unit {unit!r} in {text!r}; use one of {known}")
        total += float(number) * seconds
        pos = match.end()
    return timedelta(seconds=total)


def format_size(size: int) -> str:
    """Return `size` bytes in the largest binary unit that divides it exactly (`1GiB`)."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def format_duration(duration: timedelta) -> str:
    """Return `duration` in the largest unit that divides it exactly (`7d`, `100ms`)."""
    millis = round(duration.total_seconds() * 1000)
    for unit, factor in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if millis and millis % factor == 0:
            return f"{millis // factor}{unit}"
    if millis % 1000 == 0:
        return f"{millis // 1000}s"
    return f"{millis}ms"


# A config field holding a duration as people write it (`60s`, `5m`); validated by `parse_duration`.
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
