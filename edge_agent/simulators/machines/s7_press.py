"""The hydraulic press again, this time with a Siemens S7-1200 CPU: its values in data block 1."""

from __future__ import annotations

from edge_agent.simulators.machines.press import HydraulicPress
from edge_agent.simulators.tags import S7Tag, Value

__all__ = ["S7Press"]

_PHASE_NAMES = ("IDLE", "APPROACH", "PRESS", "DWELL", "RETURN")


class S7Press(HydraulicPress):
    """A 1000 kN hydraulic press whose S7-1200 keeps its values in DB1 (non-optimized)."""

    kind = "s7-press"
    prefix = "s7-press"
    protocol = "s7"
    model = "HP-1000 S7 SIM"
    # One non-optimized DB as a PLC programmer lays it out: REALs and DINTs on double-word
    # boundaries, the status bits in one byte, the strings at the end.
    tags = (
        S7Tag("pressure", "DB1.DBD0", "real", "bar", lo=0, hi=250, poll_ms=200),
        S7Tag("press_force", "DB1.DBD4", "real", "kN", lo=0, hi=1250),
        S7Tag("ram_position", "DB1.DBW8", "int", "mm", scale=0.1, lo=0, hi=300, poll_ms=200),
        S7Tag("oil_temp", "DB1.DBW10", "int", "°C", scale=0.1, lo=10, hi=80),
        S7Tag("cycle_count", "DB1.DBD12", "dint", lo=0, hi=2e9),
        S7Tag("stroke_phase", "DB1.DBW16", "int", lo=0, hi=4, poll_ms=200),
        S7Tag("running", "DB1.DBX18.0", "bool"),
        S7Tag("at_top", "DB1.DBX18.1", "bool", poll_ms=200),
        S7Tag("pressure_alarm", "DB1.DBX18.2", "bool"),
        S7Tag("stroke_state", "DB1.DBB20", "string", length=8, poll_ms=200),
        S7Tag("model", "DB1.DBB30", "string", length=16),
    )

    def values(self) -> dict[str, Value]:
        """The press's values plus the stroke phase by name, as an HMI shows it."""
        out = super().values()
        out["stroke_state"] = _PHASE_NAMES[self.phase]
        return out
