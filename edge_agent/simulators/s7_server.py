"""S7 shell: python-snap7's pure-Python S7 server for one simulated PLC, answering from its data
blocks (plc_values.S7Image) and showing the faults in force.

snap7's server runs a thread per client; ticks rewrite the data blocks under the server's own
area lock, so a client never reads half of a tick. Faults act where a real CPU's would show:
`slow` delays each answer, `exception` answers a read item with an S7 return code, `drop`
closes the open connections, `offline`/`restart` stop listening for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import threading
import time
from typing import Any

from snap7.error import S7Error
from snap7.server import Server
from snap7.type import SrvArea

from edge_agent.drivers.s7.address import byte_size, parse_address
from edge_agent.simulators import faults
from edge_agent.simulators.faults import FaultBook
from edge_agent.simulators.plc_values import S7Image
from edge_agent.simulators.tags import S7Tag, Value

__all__ = ["S7_RACK", "S7_SLOT", "S7Device"]

# Where an S7-1200/1500 CPU sits; python-snap7's server answers any rack and slot.
S7_RACK, S7_SLOT = 0, 1


class _Server(Server):
    """snap7's server with the hooks faults need: the client sockets (to drop them), a delay
    before each answer, a return code instead of the data of an excepted read."""

    def __init__(self, device: S7Device) -> None:
        super().__init__(log=False)
        self.device = device
        self.client_sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()

    def _handle_client(self, client_socket: socket.socket, address: tuple[str, int]) -> None:
        with self._sockets_lock:
            self.client_sockets.add(client_socket)
        try:
            super()._handle_client(client_socket, address)
        finally:
            with self._sockets_lock:
                self.client_sockets.discard(client_socket)

    def close_clients(self) -> int:
        with self._sockets_lock:
            sockets = list(self.client_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return len(sockets)

    def _process_request(self, request_data: bytes, client_address: tuple[str, int]) -> Any:
        self.device.requests += 1
        delay = self.device.delay_s()
        if delay:
            time.sleep(delay)  # this client's own thread: other clients are not held up
        return super()._process_request(request_data, client_address)

    def _read_from_memory_area(self, area: Any, db_number: int, start: int, count: int) -> Any:
        code = self.device.refused(db_number, start, count)
        if code:
            return code, bytearray()
        return super()._read_from_memory_area(area, db_number, start, count)


class S7Device:
    """One simulated S7 PLC: its data blocks, its server, its faults."""

    def __init__(self, name: str, tags: tuple[S7Tag, ...], faults: FaultBook) -> None:
        self.name = name
        self.tags = tags
        self.image = S7Image(tags)
        self.faults = faults
        self.host = "127.0.0.1"
        self.port = 0
        self.requests = 0
        self._server: _Server | None = None
        self._spans = {
            t.name: (parse_address(t.address), byte_size(t.type, t.length or 254)) for t in tags
        }

    def update(self, values: dict[str, Value], changed: set[str]) -> None:
        """Write a tick's changed values into the data blocks, holding the server's locks so
        that a client reads either all of a tick or none of it."""
        server = self._server
        locks = [] if server is None else [server.area_locks.get(k) for k in server.memory_areas]
        for lock in locks:
            if lock is not None:
                lock.acquire()
        try:
            self.image.update(values, changed)
        finally:
            for lock in locks:
                if lock is not None:
                    lock.release()

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port (0: any free port, then kept for restarts)."""
        # snap7's server logs every connection a fault closes as an error; the simulator's
        # console is for its own endpoints, and the client sees the fault anyway.
        logging.getLogger("snap7.server").setLevel(logging.CRITICAL)
        self.host = host
        server = _Server(self)
        for db, block in self.image.blocks.items():
            server.register_area(SrvArea.DB, db, block)
        try:
            server.start_to(host, port)
        except S7Error as exc:
            raise OSError(errno.EADDRINUSE, f"{self.name}: {host}:{port} is in use") from exc
        assert server.server_socket is not None
        self.port = server.server_socket.getsockname()[1]
        self._server = server

    @property
    def listening(self) -> bool:
        """False while the PLC is stopped or offline."""
        return self._server is not None

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        server, self._server = self._server, None
        if server is not None:
            server.close_clients()
            # snap7's stop joins its threads (the accept loop wakes every 0.1 s): off the loop.
            await asyncio.to_thread(server.stop)

    def drop_connections(self) -> int:
        """Close every open client connection now; returns how many were closed."""
        return 0 if self._server is None else self._server.close_clients()

    async def go_offline(self, seconds: float) -> None:
        """Refuse connections for `seconds`, then listen again on the same port."""
        await faults.go_offline(self, seconds)

    def delay_s(self) -> float:
        """How long a `slow` fault holds each answer now (from a client's thread)."""
        active = self.faults.active(self.name, time.monotonic())
        return sum(f.delay_s for f in active if f.kind == "slow")

    def refused(self, db: int, start: int, count: int) -> int:
        """The S7 return code an `exception` fault answers a read of these bytes with; 0: none."""
        for fault in self.faults.active(self.name, time.monotonic()):
            if fault.kind != "exception":
                continue
            if fault.tag is None:
                return fault.code
            where, size = self._spans[fault.tag]
            if where.db == db and start < where.byte + size and where.byte < start + count:
                return fault.code
        return 0
