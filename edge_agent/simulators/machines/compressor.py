"""Screw air compressor: load/unload cycling between pressure limits, run hours."""

from __future__ import annotations

from edge_agent.simulators.machines.base import Machine, lag_factor
from edge_agent.simulators.tags import ModbusTag, Value

__all__ = ["AirCompressor"]

_LOAD_BAR, _UNLOAD_BAR = 7.0, 8.0
_FAD_M3_MIN = 10.0
# Receiver + network: bar gained per (m³/min of surplus) per second.
_BAR_PER_M3 = 0.02
_LOADED_A, _UNLOADED_A = 55.0, 20.0


class AirCompressor(Machine):
    """A 37 kW screw compressor loading at 7 bar and unloading at 8 bar."""

    kind = "air-compressor"
    prefix = "compressor"
    protocol = "modbus"
    model = "SC-37 SIM"
    tags = (
        ModbusTag("discharge_pressure", "input", 0, "int16", "bar", scale=0.01, lo=0, hi=10),
        ModbusTag("motor_current", "input", 1, "float32", "A", order="BADC", lo=0, hi=80),
        ModbusTag("run_hours", "input", 3, "float64", "h", order="CDAB", lo=0, hi=2e5),
        ModbusTag("load_state", "input", 7, "uint16", lo=0, hi=2),
        ModbusTag("outlet_temp", "input", 8, "int16", "°C", scale=0.1, lo=0, hi=110),
        ModbusTag("running", "input", 9, "bool", bit=0),
        ModbusTag("loaded", "input", 9, "bool", bit=1),
        ModbusTag("maintenance_due", "input", 9, "bool", bit=3),
        ModbusTag("load_cycles", "input", 10, "int32", order="DCBA", lo=0, hi=2e9),
        ModbusTag("model", "holding", 0, "string", length=5),
        ModbusTag("remote_start", "coil", 0, "bool", writable=True),
    )

    def _setup(self) -> None:
        self.pressure = _LOAD_BAR + self.rng.uniform(0.0, 1.0)
        self.loaded = self.rng.random() < 0.5
        self.current = _LOADED_A if self.loaded else _UNLOADED_A
        self.run_hours = self.rng.uniform(2_000.0, 30_000.0)
        self.cycles = self.rng.randrange(1_000, 100_000)
        self.demand = _FAD_M3_MIN * 0.6
        self.outlet = 75.0
        self._current_k = lag_factor(1.5)
        self._outlet_k = lag_factor(120.0)
        self.p_noise = self.i_noise = 0.0
        self.enabled = True

    def write(self, tag: str, value: Value) -> None:
        """Remote start: off stops the motor (the receiver then drains), on lets it run."""
        if tag != "remote_start":
            super().write(tag, value)
        self.enabled = bool(value)

    def _step(self, dt: float) -> None:
        # Plant air demand wanders between 30 % and 90 % of the compressor's free air delivery.
        self.demand += self.noise(0.05) * dt**0.5 * _FAD_M3_MIN
        self.demand = max(0.3 * _FAD_M3_MIN, min(0.9 * _FAD_M3_MIN, self.demand))
        if not self.enabled:
            self.loaded = False
        supply = _FAD_M3_MIN if self.loaded else 0.0
        self.pressure += (supply - self.demand) * _BAR_PER_M3 * dt
        if self.loaded and self.pressure >= _UNLOAD_BAR:
            self.loaded = False
        elif self.enabled and not self.loaded and self.pressure <= _LOAD_BAR:
            self.loaded = True
            self.cycles += 1
        target_a = (_LOADED_A if self.loaded else _UNLOADED_A) if self.enabled else 0.0
        self.current += (target_a - self.current) * self._current_k
        self.outlet += ((82.0 if self.loaded else 70.0) - self.outlet) * self._outlet_k
        self.run_hours += dt / 3600.0
        self.p_noise = self.noise(0.01)
        self.i_noise = self.noise(0.3)

    def values(self) -> dict[str, Value]:
        """Current value of every tag, in engineering units, keyed by tag name."""
        return {
            "discharge_pressure": self.pressure + self.p_noise,
            "motor_current": self.current + self.i_noise,
            "run_hours": self.run_hours,
            "load_state": 2 if self.loaded else 1,
            "outlet_temp": self.outlet,
            "running": self.enabled,
            "loaded": self.loaded,
            "maintenance_due": self.run_hours % 2000.0 > 1950.0,
            "load_cycles": self.cycles,
            "model": self.model,
            "remote_start": self.enabled,
        }
