"""`millstream demo`: the whole pipeline on one machine with no servers to install.

A simulated plant, an edge agent, an embedded MQTT broker (amqtt) and a hub storing to SQLite
with its dashboard, supervised by one process; state lives in one folder. See docs/demo.md.

Modules: `cli` (the `millstream` command), `supervisor` (start, watch, stop in order),
`layout` (the data folder, secrets, generated configs), `children` (component processes),
`broker` (the embedded broker process). Nothing is imported here, so `millstream --help` and
the demo's first progress line come at once.
"""

__all__ = ["broker", "children", "cli", "layout", "supervisor"]
