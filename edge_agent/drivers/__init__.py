"""Device drivers behind one Protocol: `modbus/` and `opcua/`, one folder per protocol."""

from edge_agent.drivers.base import Driver, Quality, Sample, SubscribingDriver, Value

__all__ = ["Driver", "Quality", "Sample", "SubscribingDriver", "Value"]
