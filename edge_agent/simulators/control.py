"""Control interface: line-delimited JSON over TCP on 127.0.0.1.

Each request is one JSON object on one line; each answer is one JSON object on one line with
`"ok": true` and the result, or `"ok": false` and an `"error"` message. Commands:

    {"cmd": "status"}
    {"cmd": "inject", "machine": "press-01", "tag": "oil_temp", "kind": "drift",
     "duration": 60, "magnitude": 0.5, "delay": 0}
    {"cmd": "clear", "machine": "press-01", "tag": "oil_temp"}          # anomalies; keys optional
    {"cmd": "fault", "machine": "press-01", "kind": "exception", "tag": "oil_temp", "code": 2,
     "duration": 30}                                 # kinds: drop offline slow exception restart
    {"cmd": "clear_faults", "machine": "press-01"}                       # machine optional

Try it with `nc 127.0.0.1 7020` or `edge-agent simulate inject …`.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

__all__ = ["ControlServer", "Handler", "request", "request_sync"]

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
_MAX_LINE = 64 * 1024


class ControlServer:
    """Serves the control protocol, handing each decoded request to `handler`."""

    def __init__(self, handler: Handler, host: str, port: int) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=_MAX_LINE
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while line := await reader.readline():
                answer = await self._answer(line)
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # a client that vanishes or floods one line only loses its own session
        finally:
            self._conns.discard(task)
            writer.close()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("a request is a JSON object")  # noqa: TRY301, TRY004
            return {"ok": True, **await self.handler(req)}
        except (ValueError, KeyError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}


async def request(host: str, port: int, req: dict[str, Any], timeout_s: float = 10.0) -> Any:
    """Send one control request and return the decoded answer (async, for tests)."""
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(json.dumps(req).encode() + b"\n")
            await writer.drain()
            return json.loads(await reader.readline())
        finally:
            writer.close()
            await writer.wait_closed()


def request_sync(host: str, port: int, req: dict[str, Any], timeout: float = 10.0) -> Any:
    """Send one control request and return the decoded answer (blocking, for the CLI)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(json.dumps(req).encode() + b"\n")
        with sock.makefile("rb") as f:
            return json.loads(f.readline())
