"""A real S7 server for tests: python-snap7's, on 127.0.0.1 and a free port, with the data
blocks and areas a test gives it (bytearrays the test may change while it runs)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from snap7.server import Server
from snap7.type import SrvArea

from tests.harness import free_port

__all__ = ["s7_server"]


@contextlib.contextmanager
def s7_server(
    dbs: dict[int, bytearray],
    *,
    merker: bytearray | None = None,
    inputs: bytearray | None = None,
    outputs: bytearray | None = None,
    port: int | None = None,
) -> Iterator[tuple[Server, int]]:
    """(server, port) while it runs; stopped on exit."""
    server = Server(log=False)
    for number, data in dbs.items():
        server.register_area(SrvArea.DB, number, data)
    for area, data in ((SrvArea.MK, merker), (SrvArea.PE, inputs), (SrvArea.PA, outputs)):
        if data is not None:
            server.register_area(area, 0, data)
    port = port or free_port()
    server.start_to("127.0.0.1", port)
    try:
        yield server, port
    finally:
        server.stop()
