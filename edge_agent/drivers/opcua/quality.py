"""Map OPC-UA status codes to the wire contract's quality classes (OPC 10000-4 §7.39)."""

from __future__ import annotations

from typing import Literal

__all__ = ["Quality", "device_silence", "quality_of"]

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


# Status codes by which a server says the device behind it does not answer (a gateway whose
# serial device is gone, a PLC whose I/O bus is down): the session is fine, the machine is not.
_DEVICE_SILENT = {
    0x80050000: "BadCommunicationError",
    0x808A0000: "BadNotConnected",
    0x808B0000: "BadDeviceFailure",
    0x800D0000: "BadServerNotConnected",
    0x80310000: "BadNoCommunication",
}


def device_silence(statuses: list[int]) -> tuple[bool, str | None]:
    """(answering, why silent) of one read or publish response's item statuses: answering when
    any item is good or uncertain; silent (with the code's name) when every item carries a code
    that says the device does not answer; neither for other bad codes (a wrong node is a config
    problem, not an outage)."""
    if any(quality_of(s) != "bad" for s in statuses):
        return True, None
    names = {_DEVICE_SILENT.get(s & 0xFFFF0000) for s in statuses}
    if statuses and None not in names:
        return False, ", ".join(sorted(n for n in names if n))
    return False, None
