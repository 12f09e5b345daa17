"""`millstream demo`: the whole pipeline on one machine with no servers to install.

A simulated plant, an edge agent, an embedded MQTT broker (amqtt) and a hub storing to SQLite
with its dashboard, supervised by one process; state lives in one folder. See docs/demo.md.
"""

from hub.demo.layout import DemoLayout
from hub.demo.supervisor import DemoOptions, run_demo

__all__ = ["DemoLayout", "DemoOptions", "run_demo"]
