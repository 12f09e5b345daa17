"""Live data: the in-process fan-out of validated readings and the WebSocket endpoint."""

from hub.live.buffer import ClientBuffer, Update, make_update
from hub.live.fanout import Fanout, Subscriber, machine_key, updates_from_batches
from hub.live.metrics import LiveMetrics
from hub.live.protocol import ClientMessage, ProtocolError, parse_client_message
from hub.live.server import LiveWebSocketProtocol
from hub.live.ws import LiveEndpoint, mount_live

__all__ = [
    "ClientBuffer",
    "ClientMessage",
    "Fanout",
    "LiveEndpoint",
    "LiveMetrics",
    "LiveWebSocketProtocol",
    "ProtocolError",
    "Subscriber",
    "Update",
    "machine_key",
    "make_update",
    "mount_live",
    "parse_client_message",
    "updates_from_batches",
]
