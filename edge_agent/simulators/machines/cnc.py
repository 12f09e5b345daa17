"""CNC mill: a part program of machining operations, axes moving, spindle heating under load."""

from __future__ import annotations

import math

from edge_agent.simulators.machines.base import Machine, lag_factor
from edge_agent.simulators.tags import OpcuaTag, Value

__all__ = ["CncMill"]

# (operation, spindle rpm, spindle load %, nominal seconds) of the part program.
_PROGRAM = (
    ("TOOL_CHANGE", 0.0, 0.0, 6.0),
    ("ROUGHING", 8000.0, 68.0, 40.0),
    ("TOOL_CHANGE", 0.0, 0.0, 6.0),
    ("FINISHING", 12000.0, 30.0, 30.0),
    ("TOOL_CHANGE", 0.0, 0.0, 6.0),
    ("DRILLING", 3000.0, 45.0, 15.0),
    ("UNLOAD", 0.0, 0.0, 12.0),
)
_TEMP_TAU_S = 120.0


class CncMill(Machine):
    """A 3-axis vertical machining centre running the same part program over and over."""

    kind = "cnc-mill"
    prefix = "cnc"
    protocol = "opcua"
    model = "VMC-850 SIM"
    tags = (
        OpcuaTag(
            "spindle_speed", ("Spindle", "Speed"), "Double", "rpm", lo=0, hi=15000, decimals=0
        ),
        OpcuaTag("spindle_load", ("Spindle", "Load"), "Double", "%", lo=0, hi=100, decimals=1),
        OpcuaTag(
            "spindle_temp",
            ("Spindle", "Temperature"),
            "Double",
            "°C",
            lo=10,
            hi=90,
            sampling_ms=1000,
            decimals=2,
        ),
        OpcuaTag("axis_x", ("Axes", "X"), "Double", "mm", lo=0, hi=850, decimals=3),
        OpcuaTag("axis_y", ("Axes", "Y"), "Double", "mm", lo=0, hi=500, decimals=3),
        OpcuaTag("axis_z", ("Axes", "Z"), "Double", "mm", lo=-500, hi=0, decimals=3),
        OpcuaTag("program_state", ("Program", "State"), "String", sampling_ms=1000),
        OpcuaTag("operation", ("Program", "Operation"), "String", sampling_ms=1000),
        OpcuaTag("part_count", ("Program", "PartCount"), "UInt32", lo=0, hi=4e9, sampling_ms=1000),
        OpcuaTag("door_closed", ("Status", "DoorClosed"), "Boolean", sampling_ms=1000),
        OpcuaTag("model", ("Identification", "Model"), "String", sampling_ms=1000),
    )

    def _setup(self) -> None:
        self.op = 0
        self.op_t = 0.0
        self.op_len = _PROGRAM[0][3]
        self.parts = self.rng.randrange(0, 50_000)
        self.speed = 0.0
        self.load = 0.0
        self.temp = 28.0 + self.rng.uniform(-2.0, 2.0)
        self.phase = self.rng.uniform(0.0, 2 * math.pi)
        self._temp_k = lag_factor(_TEMP_TAU_S)
        self._speed_k = lag_factor(0.8)
        self.load_noise = 0.0

    def _step(self, dt: float) -> None:
        self.op_t += dt
        if self.op_t >= self.op_len:
            self.op = (self.op + 1) % len(_PROGRAM)
            if self.op == 0:
                self.parts += 1
            self.op_t = 0.0
            self.op_len = _PROGRAM[self.op][3] * self.rng.uniform(0.95, 1.05)
        _, rpm, load, _ = _PROGRAM[self.op]
        self.speed += (rpm - self.speed) * self._speed_k
        self.load += (load - self.load) * self._speed_k
        self.load_noise = self.noise(2.0) if load > 0.0 else 0.0
        # Bearing temperature follows spindle load with a two-minute lag.
        self.temp += (25.0 + 0.45 * self.load - self.temp) * self._temp_k

    def _axes(self) -> tuple[float, float, float]:
        name = _PROGRAM[self.op][0]
        if name in ("TOOL_CHANGE", "UNLOAD"):
            return 0.0, 0.0, 0.0
        w = self.t * 0.3 + self.phase
        x = 425.0 + 300.0 * math.sin(w)
        y = 250.0 + 180.0 * math.sin(2 * w)
        z = -120.0 - (40.0 if name == "DRILLING" else 15.0) * (1 + math.sin(5 * w)) / 2
        return x, y, z

    def values(self) -> dict[str, Value]:
        """Current value of every tag, in engineering units, keyed by tag name."""
        name = _PROGRAM[self.op][0]
        x, y, z = self._axes()
        return {
            "spindle_speed": self.speed,
            "spindle_load": max(0.0, self.load + self.load_noise),
            "spindle_temp": self.temp,
            "axis_x": x,
            "axis_y": y,
            "axis_z": z,
            "program_state": "IDLE" if name == "UNLOAD" else "RUNNING",
            "operation": name,
            "part_count": self.parts,
            "door_closed": name != "UNLOAD",
            "model": self.model,
        }
