"""The hub's WebSocket server protocol: uvicorn's own, plus a way to write ready-made frames.

`LiveWebSocketProtocol` (passed to uvicorn as `ws=`) puts a `write` function under
`scope["extensions"]["millstream.frame_writer"]`. It writes a prepared frame (`text_frame`)
straight to the socket when that is safe: the connection is open, no compression extension was
negotiated (frames would differ per client) and the socket's buffer is below its high-water
mark. Otherwise it returns False and the endpoint sends through ASGI as any app would. Frames
are whole and written synchronously, so they never interleave with the protocol's own pings and
close frame.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

__all__ = ["FRAME_WRITER", "LiveWebSocketProtocol"]

FRAME_WRITER = "millstream.frame_writer"


class LiveWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websockets protocol with the `millstream.frame_writer` extension."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # absent when the handshake was refused
            scope["extensions"][FRAME_WRITER] = {"write": self.write_frame}

    def write_frame(self, frame: bytes) -> bool:
        """Write a prepared frame now if that is safe; False when the caller must use ASGI."""
        if (
            self.close_sent
            or self.disconnected
            or self.conn.state is not State.OPEN
            or self.conn.extensions
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True
