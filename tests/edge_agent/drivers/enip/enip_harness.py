"""A real EtherNet/IP (Logix) server for tests: cpppo's, in its own process on 127.0.0.1 and a
free port, with the tags a test names (`Speed=REAL`, `Data=DINT[10]`); values set through a
client of its own (pylogix), as a PLC program would change them. It also answers the tag list
(Symbol Object, service 0x55: edge_agent/simulators/enip_symbols.py), as a controller does."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from pylogix import PLC

from tests.harness import free_port

__all__ = ["EnipServer", "enip_server"]


class EnipServer:
    """A running cpppo Logix simulator."""

    def __init__(self, tags: dict[str, str], port: int, *, tag_list: bool = True) -> None:
        self.tags = tags
        self.port = port
        # False: cpppo's own server, which does not answer the tag list (service 0x55).
        self.tag_list = tag_list
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it takes connections."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m",
             "edge_agent.simulators.enip_symbols" if self.tag_list else "cpppo.server.enip",
             "--address", f"127.0.0.1:{self.port}",
             *(f"{name}={type_}" for name, type_ in self.tags.items())],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return
            assert self.proc.poll() is None, "cpppo's EtherNet/IP server exited"
            assert time.monotonic() < deadline, "cpppo's EtherNet/IP server never listened"
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop it (by its PID)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def set(self, **values: Any) -> None:
        """Write tag values (array elements as `Data_3` → `Data[3]`)."""
        with PLC("127.0.0.1", port=self.port) as plc:
            # pylogix makes two sockets in its constructor that it never closes.
            plc.conn.Socket.close()
            plc.conn.msg_socket.close()
            for name, value in values.items():
                tag = name.replace("_", "[", 1) + "]" if "_" in name else name
                assert plc.Write(tag, value).Status == "Success", tag


@contextlib.contextmanager
def enip_server(
    tags: dict[str, str], port: int | None = None, *, tag_list: bool = True
) -> Iterator[EnipServer]:
    """A cpppo Logix server for the test's duration."""
    server = EnipServer(tags, port or free_port(), tag_list=tag_list)
    server.start()
    try:
        yield server
    finally:
        server.stop()
