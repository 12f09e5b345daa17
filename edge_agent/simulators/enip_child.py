"""A Logix controller for the simulator: cpppo's EtherNet/IP server in a process of its own.

    python -m edge_agent.simulators.enip_child HOST:PORT 'Name=REAL' 'Counters=DINT[2]' …

cpppo keeps its tags and server controls in module globals and runs on threads of its own, so it
gets a process per simulator (and stays a separate program: cpppo is GPL-licensed and installed
for development only). The simulator steers it over stdin, one JSON object per line — the first
one the initial values, before anything listens — and hears of clients' writes on stdout:

    in:  {"values": {"Program:MainProgram.BeltSpeed": 1.2, "Counters[0]": 5}}
    in:  {"delay": 2.0}  {"error": {"tag": "Counters", "code": 5}}  {"drop": true}
    out: {"listening": 44818}    (first: the port bound, which may have been asked as 0)
    out: {"error": "cannot listen on 127.0.0.1:44818"}    (instead, and the process ends)
    out: {"write": "Program:MainProgram.SpeedSetpoint", "value": 0.8}

End of input ends it. It also answers the tag list as a controller does (enip_symbols.py), so
`edge-agent browse` can be rehearsed against it.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import sys
import threading
import time
from types import SimpleNamespace
from typing import Any

from edge_agent.simulators.enip_symbols import message_router_class

_ELEMENT = re.compile(r"^(.*)\[(\d+)\]$")
_stdout_lock = threading.Lock()


def _split(tag: str) -> tuple[str, int | None]:
    match = _ELEMENT.match(tag)
    return (match.group(1), int(match.group(2))) if match else (tag, None)


def _say(message: dict[str, Any]) -> None:
    with _stdout_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def main(argv: list[str]) -> None:
    """Serve the tags named in `argv` until stdin ends."""
    # Ctrl-C in a terminal reaches the whole process group: the simulator decides when this
    # process ends (by closing its stdin), so a Ctrl-C here is ignored rather than a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    address, specs = argv[0], argv[1:]
    initial: dict[str, Any] = json.loads(sys.stdin.readline() or "{}").get("values", {})

    from cpppo.server.enip import device  # noqa: PLC0415 - after the first line, for start-up
    from cpppo.server.enip import main as enip_main  # noqa: PLC0415

    def assign(tags: dict[str, Any], values: dict[str, Any]) -> None:
        for tag, value in values.items():
            base, index = _split(tag)
            # cpppo's tags are a dotdict, whose own lookups would split "Conveyor.Motor.Current".
            entry = dict.get(tags, base)
            if entry is None:
                continue
            attribute = entry.attribute
            if index is None:
                attribute.value = value  # the property setter: not a client's write
            else:
                attribute.default[index] = value

    class Reported(device.Attribute):  # type: ignore[misc]
        """An attribute that starts with the simulator's value and reports clients' writes."""

        def __init__(self, name: str, type_cls: Any, default: Any = 0, **kwds: Any) -> None:
            super().__init__(name, type_cls, default=default, **kwds)
            for tag, value in initial.items():
                base, index = _split(tag)
                if base != name:
                    continue
                if index is None:
                    self.value = value
                else:
                    self.default[index] = value

        def __setitem__(self, key: Any, value: Any) -> None:
            super().__setitem__(key, value)
            _say({"write": self.name, "value": self.value if self.scalar else list(self.default)})

    # The open connections, so the simulator's `drop` fault can close them as a controller
    # reboot would (cpppo has no call for it), and the delay of a `slow` fault, which cpppo reads
    # afresh before every reply (its own --delay never reaches a connection when set later).
    connections: set[socket.socket] = set()
    delay = SimpleNamespace(value=0.0)
    serve_one = enip_main.enip_srv

    def tracked(conn: socket.socket, addr: Any, **kwds: Any) -> Any:
        connections.add(conn)
        try:
            return serve_one(conn, addr, **{**kwds, "delay": delay})
        finally:
            connections.discard(conn)

    enip_main.enip_srv = tracked
    args = ["--address", address, "--no-udp", "--no-config", *specs]
    server = threading.Thread(
        target=enip_main.main,
        # The tag list too (message_router_class), so `edge-agent browse` can be rehearsed.
        kwargs={
            "argv": args,
            "attribute_class": Reported,
            "message_router_class": message_router_class(),
        },
        daemon=True,
    )
    server.start()
    # cpppo puts the address it bound in its control dict; its thread ends if it cannot bind.
    while not (control := enip_main.srv_ctl.get("control")) or not control.get("address"):
        if not server.is_alive():
            _say({"error": f"cannot listen on {address}"})
            sys.exit(1)
        time.sleep(0.02)
    _say({"listening": control["address"][1]})
    for line in sys.stdin:
        request = json.loads(line)
        if "values" in request:
            assign(enip_main.tags, request["values"])
        if "delay" in request:
            delay.value = float(request["delay"])
        if "error" in request:
            wanted = request["error"]
            for name, entry in dict.items(enip_main.tags):
                if wanted.get("tag") in (None, name):
                    entry.attribute.error = int(wanted.get("code") or 0)
        if request.get("drop"):
            for conn in list(connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
    control["done"] = True
    server.join(timeout=2.0)


if __name__ == "__main__":
    main(sys.argv[1:])
