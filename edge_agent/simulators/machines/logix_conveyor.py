"""The belt conveyor again, this time with an Allen-Bradley CompactLogix: tags by name."""

from __future__ import annotations

from edge_agent.simulators.machines.conveyor import Conveyor
from edge_agent.simulators.tags import LogixTag, Value

__all__ = ["LogixConveyor"]

_PARCEL_KG = 2.5


class LogixConveyor(Conveyor):
    """A 12 m belt conveyor whose CompactLogix has a Conveyor UDT, counters and program tags."""

    kind = "logix-conveyor"
    prefix = "logix-conveyor"
    protocol = "enip"
    model = "BC-1200 LOGIX SIM"
    # What a Studio 5000 project exposes: a UDT (Conveyor, with a Motor member), an array of
    # counters, and program-scoped tags of MainProgram; the barcode of the last item scanned.
    tags = (
        LogixTag("belt_speed", "Program:MainProgram.BeltSpeed", "real", "m/s", lo=0, hi=2,
                 poll_ms=500),
        LogixTag("speed_setpoint", "Program:MainProgram.SpeedSetpoint", "real", "m/s", lo=0,
                 hi=2, writable=True),
        LogixTag("motor_current", "Conveyor.Motor.Current", "real", "A", lo=0, hi=20),
        LogixTag("motor_temp", "Conveyor.Motor.Temp", "int", "°C", scale=0.1, lo=10, hi=100),
        LogixTag("belt_load", "Conveyor.LoadCell", "int", "kg", scale=0.1, lo=0, hi=200),
        LogixTag("distance", "Conveyor.Distance", "lreal", "m", lo=0, hi=1e9),
        LogixTag("jammed", "Conveyor.Jammed", "bool"),
        LogixTag("running", "Conveyor.Running", "bool"),
        LogixTag("photo_eye", "Conveyor.PhotoEye", "bool", poll_ms=200),
        LogixTag("item_count", "Counters[0]", "dint", lo=0, hi=2e9),
        LogixTag("jam_count", "Counters[1]", "dint", lo=0, hi=2e9),
        LogixTag("last_item", "Program:MainProgram.LastItem", "string"),
        LogixTag("model", "Model", "string"),
    )  # fmt: skip

    def _setup(self) -> None:
        super()._setup()
        self.jams = self.rng.randrange(0, 500)
        self.eye_left = 0.0

    def _step(self, dt: float) -> None:
        was_jammed, items = self.jam_left > 0.0, self.items
        super()._step(dt)
        if self.jam_left > 0.0 and not was_jammed:
            self.jams += 1
        # The infeed photo-eye sees each new item for as long as a 0.3 m parcel takes to pass.
        if self.items != items:
            self.eye_left = 0.3 / max(self.speed, 0.3)
        else:
            self.eye_left = max(0.0, self.eye_left - dt)

    def values(self) -> dict[str, Value]:
        """The conveyor's values plus its jam counter and the last item's barcode."""
        out = super().values()
        out["jam_count"] = self.jams
        out["last_item"] = f"PKG-{self.items:08d}"
        out["photo_eye"] = self.eye_left > 0.0
        # The belt's load cell weighs the parcels on it (the model's smooth expectation).
        out["belt_load"] = self.on_belt * _PARCEL_KG
        return out
