"""Industrial oven: three zones following setpoints with thermal lag under PI control."""

from __future__ import annotations

from edge_agent.simulators.machines.base import Machine
from edge_agent.simulators.tags import ModbusTag, Value

__all__ = ["Oven"]

_AMBIENT_C = 22.0
_ZONES = 3
_HEATER_KW = 12.0
# Per zone: heat capacity (kJ/K) and loss to ambient (kW/K); tau = C / loss ≈ 16 min open loop.
_CAPACITY = 40.0
_LOSS = 0.0417
_DOOR_LOSS = 0.15
_RECIPES = ((180.0, 200.0, 220.0), (160.0, 175.0, 190.0), (200.0, 215.0, 230.0))
_RECIPE_S = 1800.0
_DOOR_EVERY_S = 300.0


class Oven(Machine):
    """A three-zone curing oven that changes recipe every 30 min and opens its door to load."""

    kind = "oven"
    prefix = "oven"
    protocol = "modbus"
    model = "TZO-3 SIM"
    tags = (
        ModbusTag("zone1_temp", "input", 0, "float32", "°C", lo=0, hi=300),
        ModbusTag("zone2_temp", "input", 2, "float32", "°C", lo=0, hi=300),
        ModbusTag("zone3_temp", "input", 4, "float32", "°C", lo=0, hi=300),
        ModbusTag("zone1_duty", "input", 6, "uint16", "%", scale=0.1, lo=0, hi=100),
        ModbusTag("zone2_duty", "input", 7, "uint16", "%", scale=0.1, lo=0, hi=100),
        ModbusTag("zone3_duty", "input", 8, "uint16", "%", scale=0.1, lo=0, hi=100),
        ModbusTag("energy", "input", 10, "float64", "kWh", lo=0, hi=1e9, poll_ms=5000),
        ModbusTag("zone1_setpoint", "holding", 0, "float32", "°C", order="CDAB", lo=0, hi=300),
        ModbusTag("zone2_setpoint", "holding", 2, "float32", "°C", order="CDAB", lo=0, hi=300),
        ModbusTag("zone3_setpoint", "holding", 4, "float32", "°C", order="CDAB", lo=0, hi=300),
        ModbusTag("model", "holding", 20, "string", length=5),
        ModbusTag("heaters_enabled", "coil", 0, "bool"),
        ModbusTag("door_open", "discrete", 0, "bool"),
    )

    def _setup(self) -> None:
        # Start part-way through a warm-up so the first minutes show the thermal lag.
        self.recipe_offset = self.rng.randrange(len(_RECIPES))
        self.temps = [sp - self.rng.uniform(30.0, 80.0) for sp in self.setpoints()]
        self.duty = [0.0] * _ZONES
        self.integral = [0.5] * _ZONES
        self.energy = self.rng.uniform(1e4, 1e5)
        self.door_phase = self.rng.uniform(0.0, _DOOR_EVERY_S)
        self.door_len = 20.0
        self.noises = [0.0] * _ZONES

    def setpoints(self) -> list[float]:
        """Zone setpoints of the recipe running at the current simulated time."""
        recipe = (int(self.t // _RECIPE_S) + self.recipe_offset) % len(_RECIPES)
        return list(_RECIPES[recipe])

    def door_open(self) -> bool:
        """The door opens for ~20 s every 5 min to load a rack."""
        return (self.t + self.door_phase) % _DOOR_EVERY_S < self.door_len

    def _step(self, dt: float) -> None:
        door = self.door_open()
        if (self.t + self.door_phase) % _DOOR_EVERY_S < dt:
            self.door_len = self.rng.uniform(15.0, 30.0)
        for z, sp in enumerate(self.setpoints()):
            err = sp - self.temps[z]
            # PI control; the integral only moves while the output is not saturated (anti-windup).
            raw = 0.05 * err + self.integral[z]
            if 0.0 < raw < 1.0 or (raw >= 1.0) != (err > 0.0):
                self.integral[z] = max(0.0, min(1.0, self.integral[z] + 0.0005 * err * dt))
            self.duty[z] = max(0.0, min(1.0, raw))
            loss = _LOSS + (_DOOR_LOSS if door and z == 0 else _DOOR_LOSS / 4 if door else 0.0)
            heat_kw = _HEATER_KW * self.duty[z] - loss * (self.temps[z] - _AMBIENT_C)
            self.temps[z] += heat_kw * dt / _CAPACITY
            self.energy += _HEATER_KW * self.duty[z] * dt / 3600.0
            self.noises[z] = self.noise(0.1)

    def values(self) -> dict[str, Value]:
        """Current value of every tag, in engineering units, keyed by tag name."""
        sps = self.setpoints()
        out: dict[str, Value] = {}
        for z in range(_ZONES):
            out[f"zone{z + 1}_temp"] = self.temps[z] + self.noises[z]
            out[f"zone{z + 1}_duty"] = self.duty[z] * 100.0
            out[f"zone{z + 1}_setpoint"] = sps[z]
        out["energy"] = self.energy
        out["model"] = self.model
        out["heaters_enabled"] = True
        out["door_open"] = self.door_open()
        return out
