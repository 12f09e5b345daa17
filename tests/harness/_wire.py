"""Just enough of each server's protocol to prove it answers, over a plain blocking socket.

The harness stays free of client libraries and event loops, so it works from sync fixtures, from
inside an async test (restart() mid-test) and from scripts/services with a bare python3.
"""

from __future__ import annotations

import os
import socket
import struct

from ._server import HOST, ProbeError

__all__ = ["kafka_api_versions", "mqtt_connect", "pg_simple_query", "redis_ping"]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProbeError("connection closed by the server")
        buf += chunk
    return buf


def _utf8(text: str) -> bytes:
    # MQTT 3.1.1 §1.5.3: a UTF-8 string is prefixed by its two-byte length.
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def _remaining_length(n: int) -> bytes:
    # MQTT 3.1.1 §2.2.3: seven bits per byte, high bit set while more bytes follow.
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_connect(
    port: int, timeout: float, username: str | None = None, password: str | None = None
) -> None:
    """MQTT 3.1.1 CONNECT (clean session) and expect CONNACK 'accepted' (MQTT 3.1.1 §3.1, §3.2)."""
    client_id = f"millstream-probe-{os.getpid()}-{os.urandom(3).hex()}"
    # Protocol name, level 4 (3.1.1), flags: clean session (+ user name, password), keepalive 10 s.
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    variable = b"\x00\x04MQTT\x04" + bytes([flags]) + b"\x00\x0a"
    payload = _utf8(client_id)
    if username is not None:
        payload += _utf8(username)
    if password is not None:
        payload += _utf8(password)
    body = variable + payload
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
        connack = _recv_exact(sock, 4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise ProbeError(f"unexpected CONNACK {connack.hex()}")
        sock.sendall(b"\xe0\x00")  # DISCONNECT, so no will and no session linger


def redis_ping(port: int, timeout: float) -> None:
    """PING and expect +PONG (a loading server answers -LOADING)."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(b"PING\r\n")
        reply = sock.recv(64)
        if not reply.startswith(b"+PONG"):
            raise ProbeError(f"PING answered {reply!r}")


def _pg_message(sock: socket.socket) -> tuple[bytes, bytes]:
    head = _recv_exact(sock, 5)
    (length,) = struct.unpack("!I", head[1:])
    return head[:1], _recv_exact(sock, length - 4)


def _pg_error_text(body: bytes) -> str:
    fields = {f[:1]: f[1:].decode("utf-8", "replace") for f in body.split(b"\x00") if f}
    return f"{fields.get(b'C', '?')}: {fields.get(b'M', '?')}"


def pg_simple_query(
    port: int,
    timeout: float,
    sql: str | None = None,
    *,
    user: str = "postgres",
    database: str = "postgres",
) -> None:
    """Log in (trust auth) and optionally run one statement; raise ProbeError on any error response.

    PostgreSQL frontend/backend protocol v3 (docs §55.2): StartupMessage, then the server sends
    AuthenticationOk … ReadyForQuery, or ErrorResponse 57P03 while it is still starting up.
    """
    params = f"user\x00{user}\x00database\x00{database}\x00\x00".encode()
    startup = struct.pack("!II", 8 + len(params), 196608) + params
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(startup)
        _pg_until_ready(sock, logged_in=False)
        if sql is not None:
            query = sql.encode() + b"\x00"
            sock.sendall(b"Q" + struct.pack("!I", 4 + len(query)) + query)
            _pg_until_ready(sock, logged_in=True)
        sock.sendall(b"X\x00\x00\x00\x04")  # Terminate


def _pg_until_ready(sock: socket.socket, *, logged_in: bool) -> None:
    error: str | None = None
    while True:
        kind, body = _pg_message(sock)
        if kind == b"E":
            error = _pg_error_text(body)
            # Startup errors are not followed by ReadyForQuery; the server closes the connection.
            if not logged_in:
                raise ProbeError(error)
        elif kind == b"R" and struct.unpack("!I", body[:4])[0] != 0:
            raise ProbeError("server asks for a password; the harness expects trust auth")
        elif kind == b"Z":
            if error is not None:
                raise ProbeError(error)
            return


def kafka_api_versions(port: int, timeout: float) -> None:
    """ApiVersions v0 (the one request every Kafka version answers) and expect error code 0.

    A KRaft broker only processes requests once it has caught up and been unfenced, so an answer
    means it is ready for clients.
    """
    client_id = b"millstream-probe"
    correlation = 7
    request = struct.pack("!hhih", 18, 0, correlation, len(client_id)) + client_id
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(struct.pack("!i", len(request)) + request)
        (size,) = struct.unpack("!i", _recv_exact(sock, 4))
        body = _recv_exact(sock, size)
        got_correlation, error_code = struct.unpack("!ih", body[:6])
        if got_correlation != correlation or error_code != 0:
            raise ProbeError(
                f"ApiVersions answered correlation {got_correlation}, error {error_code}"
            )
