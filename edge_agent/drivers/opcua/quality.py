"""Map OPC-UA status codes to the wire contract's quality classes (OPC 10000-4 §7.39)."""

from __future__ import annotations

from typing import Literal

__all__ = ["Quality", "quality_of"]

Quality = Literal["good", "uncertain", "bad"]

# The top two bits of a StatusCode are its severity: 00 good, 01 uncertain, 10/11 bad.
_SEVERITY_SHIFT = 30


def quality_of(status: int) -> Quality:
    """Quality class of a 32-bit OPC-UA StatusCode value."""
    severity = (status >> _SEVERITY_SHIFT) & 0b11
    if severity == 0:
        return "good"
    if severity == 1:
        return "uncertain"
    return "bad"
