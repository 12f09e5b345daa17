"""The five simulated machine types, one module each, and the order `--machines N` spreads them."""

from edge_agent.simulators.machines.base import STEP_S, Machine
from edge_agent.simulators.machines.cnc import CncMill
from edge_agent.simulators.machines.compressor import AirCompressor
from edge_agent.simulators.machines.conveyor import Conveyor
from edge_agent.simulators.machines.oven import Oven
from edge_agent.simulators.machines.press import HydraulicPress

__all__ = [
    "MACHINE_TYPES",
    "STEP_S",
    "AirCompressor",
    "CncMill",
    "Conveyor",
    "HydraulicPress",
    "Machine",
    "Oven",
]

# Machine i of a plant is of type MACHINE_TYPES[i % 5], so any N >= 5 has every type.
MACHINE_TYPES: tuple[type[Machine], ...] = (
    HydraulicPress,
    Conveyor,
    Oven,
    AirCompressor,
    CncMill,
)
