"""Simulated plant: deterministic machine models served over Modbus TCP and OPC-UA.

Pure core: `machines/` (physics per machine type), `plant`, `anomalies`, `registers`, `image`,
`faults`, `tags`. Thin I/O shell: `modbus_server`, `opcua_server`, `control`, `truth`, wired
together by `runtime.Simulator`. See docs/simulator.md.
"""

from edge_agent.simulators.anomalies import Anomaly, AnomalyKind, load_schedule
from edge_agent.simulators.control import request, request_sync
from edge_agent.simulators.faults import FaultKind
from edge_agent.simulators.plant import Plant, PlantSnapshot, machine_names
from edge_agent.simulators.runtime import Simulator, SimulatorOptions, TickStats
from edge_agent.simulators.truth import read_truth

__all__ = [
    "Anomaly",
    "AnomalyKind",
    "FaultKind",
    "Plant",
    "PlantSnapshot",
    "Simulator",
    "SimulatorOptions",
    "TickStats",
    "load_schedule",
    "machine_names",
    "read_truth",
    "request",
    "request_sync",
]
