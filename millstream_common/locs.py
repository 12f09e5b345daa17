"""Locations inside a config document: `("tags", 3, "address")` shown as `tags[3].address`."""

from __future__ import annotations

__all__ = ["Loc", "format_loc"]

Loc = tuple[str | int, ...]


def format_loc(loc: Loc) -> str:
    """Return `loc` the way a technician reads it: `devices[0].modbus.host`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
