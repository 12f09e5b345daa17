"""Device drivers behind one Protocol: `modbus/` and `opcua/`, one folder per protocol."""

from edge_agent.drivers.base import Driver, Quality, Sample, SubscribingDriver, Value
from edge_agent.drivers.health import DeviceHealth, DeviceState, offline_after

__all__ = [
    "DeviceHealth",
    "DeviceState",
    "Driver",
    "Quality",
    "Sample",
    "SubscribingDriver",
    "Value",
    "offline_after",
]
