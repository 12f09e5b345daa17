"""WebSocket text frames as a server sends them (RFC 6455 §5.2), built once per message (pure).

A server's frames are unmasked, so without a compression extension the bytes of a message are
the same for every client: the fan-out builds them once per update and writes them to each
socket as they are, where going through the server's protocol would frame the message again
for each of 1,000 clients (bench/ws_fanout.py).
"""

from __future__ import annotations

import struct

__all__ = ["text_frame"]

_FIN_TEXT = 0x81  # FIN bit set, opcode 0x1 (text); no RSV bits: no extension applies


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame carrying `payload` (UTF-8)."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", _FIN_TEXT, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, n)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, n)
    return header + payload
