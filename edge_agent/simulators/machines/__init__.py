"""The simulated machine types, one module each: the five `--machines N` spreads round-robin,
and the PLC-served ones `--s7-port` / `--enip-port` add (one each)."""

from edge_agent.simulators.machines.base import STEP_S, Machine
from edge_agent.simulators.machines.cnc import CncMill
from edge_agent.simulators.machines.compressor import AirCompressor
from edge_agent.simulators.machines.conveyor import Conveyor
from edge_agent.simulators.machines.logix_conveyor import LogixConveyor
from edge_agent.simulators.machines.oven import Oven
from edge_agent.simulators.machines.press import HydraulicPress
from edge_agent.simulators.machines.s7_press import S7Press

__all__ = [
    "MACHINE_TYPES",
    "PLC_TYPES",
    "STEP_S",
    "AirCompressor",
    "CncMill",
    "Conveyor",
    "HydraulicPress",
    "LogixConveyor",
    "Machine",
    "Oven",
    "S7Press",
]

# Machine i of a plant is of type MACHINE_TYPES[i % 5], so any N >= 5 has every type.
MACHINE_TYPES: tuple[type[Machine], ...] = (
    HydraulicPress,
    Conveyor,
    Oven,
    AirCompressor,
    CncMill,
)

# The machines served by a PLC protocol, each added once by its option (`--s7-port`,
# `--enip-port`) after the round-robin ones: the press's physics over S7, the conveyor's over
# EtherNet/IP.
PLC_TYPES: tuple[type[Machine], ...] = (S7Press, LogixConveyor)
