"""WebSocket `/ws`: authenticated live readings, coalesced per client (docs/api.md).

Every client's sends are paced by its token bucket (one send per `COALESCE_S` on average, up to
`SEND_BURST` banked), so a client gets ten messages per machine per second on average whatever
the ingest rate. A client that keeps up gets each update the moment the fan-out hands it over:
the update's prepared frame is written to its socket there and then (`hub/live/server.py`).
Everything else (replies, updates the pacer holds back, a socket whose buffer is full, servers
without the frame writer) goes to the client's buffer and its sender task, which sends in order.
A client that cannot keep up only delays its own sender; its buffer collapses to newest values
(`ClientBuffer`), and a send that stays blocked for `SEND_TIMEOUT_S` closes the connection (one
watchdog task checks every client each second, and sends heartbeats to idle ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.auth import NotAuthenticated, Principal
from hub.errors import MillstreamHubError
from hub.live.buffer import Update, make_update
from hub.live.fanout import Fanout, Subscriber, machine_key
from hub.live.metrics import LiveMetrics
from hub.live.pacing import Pacer
from hub.live.protocol import ClientMessage, ProtocolError, parse_client_message
from hub.live.server import FRAME_WRITER
from hub.query import SeriesInfo

__all__ = ["COALESCE_S", "HEARTBEAT_S", "LiveEndpoint", "mount_live"]

log = logging.getLogger(__name__)

COALESCE_S = 0.1
HEARTBEAT_S = 15.0
SEND_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 2.0
WATCH_S = 1.0
# Sends a client may bank (`Pacer`): one second's worth. A source exactly at the pacing rate
# (10 Hz) never pays a debt back, so the bank must cover its hiccups: updates held up by a
# broker, network or hub pause of up to 0.9 s, then arriving together, leave no lasting delay.
# With two banked, a 150 ms pause left every later update ~50 ms late (bench/ws_fanout.py).
SEND_BURST = 10.0
AUTH_TIMEOUT_S = 5.0
# Close codes in the private range (RFC 6455 §7.4.2), mirroring HTTP statuses.
CLOSE_UNAUTHORIZED = 4401
CLOSE_PROTOCOL = 4400


_FrameWrite = Callable[[bytes], bool]


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


class _Client(Subscriber):
    def __init__(
        self, loop: asyncio.AbstractEventLoop, write: _FrameWrite | None, sent: Counter[str]
    ) -> None:
        super().__init__()
        self.control: list[str] = []
        self.last_sent = loop.time()  # loop time of the last send (for heartbeats)
        self.sending_since: float | None = None  # loop time the current send began
        self.heartbeat_due = False
        self.sender: asyncio.Task[None] | None = None
        self.pacer = Pacer(COALESCE_S, SEND_BURST, loop.time())
        self._loop = loop
        self._write = write
        self._sent = sent

    def say(self, doc: dict[str, Any]) -> None:
        self.control.append(_dump(doc))
        self.ready.set()

    def push(self, update: Update) -> None:
        # The usual case, a client that keeps up: its update's shared frame goes to the socket
        # now, in the fan-out's loop, instead of waking its sender task; that wake-up and the
        # per-client framing were a third of the hub's time at 1,000 clients. Anything that
        # must go first (queued updates, replies, a send in progress) sends it the slow way.
        if (
            self._write is not None
            and self.sending_since is None
            and not self.control
            and not len(self.buffer)
        ):
            now = self._loop.time()
            if self.pacer.wait(now) == 0.0 and self._write_now(update.frame):
                self.pacer.spend(now)
                self.last_sent = now
                self._sent["readings"] += 1
                return
        super().push(update)

    def _write_now(self, frame: bytes) -> bool:
        assert self._write is not None
        try:
            return self._write(frame)
        except Exception:  # one broken socket must not stop the fan-out to the others
            log.debug("frame write failed; the sender will send and see why", exc_info=True)
            return False


class _WebSocketAt:
    # Routing through the framework wraps every message a socket sends in three layers (the
    # WebSocket class and two exception wrappers): a tenth of the hub's event loop at 1,000
    # clients × 10 messages/s. This middleware hands `path`'s connections to the endpoint with
    # the server's own `send`.
    def __init__(self, app: ASGIApp, path: str, endpoint: LiveEndpoint) -> None:
        self.app = app
        self.path = path
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == self.path:
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def mount_live(app: FastAPI, endpoint: LiveEndpoint, path: str = "/ws") -> None:
    """Serve `endpoint` at `path` on `app` (before the app starts)."""
    app.add_middleware(_WebSocketAt, path=path, endpoint=endpoint)


class LiveEndpoint:
    """The `/ws` ASGI endpoint; mount it with `mount_live(app, LiveEndpoint(...))`."""

    def __init__(
        self,
        fanout: Fanout,
        authenticate: Callable[[str], Awaitable[Principal]],
        resolve_series: Callable[[int], Awaitable[SeriesInfo | None]],
        metrics: LiveMetrics,
        *,
        latest: Callable[[str, str, str], Awaitable[list[dict[str, Any]]]] | None = None,
        clock: Callable[[], float] = time.time,
        heartbeat_s: float = HEARTBEAT_S,
        send_timeout_s: float = SEND_TIMEOUT_S,
    ) -> None:
        self._fanout = fanout
        self._authenticate = authenticate
        self._resolve = resolve_series
        self._metrics = metrics
        self._clock = clock
        self._latest = latest
        self._heartbeat_s = heartbeat_s
        self._send_timeout_s = send_timeout_s
        self._clients: set[_Client] = set()
        self._watchdog: asyncio.Task[None] | None = None
        # Messages sent by type, added to the Prometheus counter once a second by the watchdog:
        # its lock on every send was a twentieth of the event loop at 10,000 messages/s.
        self._sent: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one client until it disconnects."""
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        principal = await self._login(websocket)
        if principal is None:
            return
        writer = scope.get("extensions", {}).get(FRAME_WRITER)
        write: _FrameWrite | None = writer["write"] if writer else None
        client = _Client(asyncio.get_running_loop(), write, self._sent)
        self._fanout.add(client)
        self._clients.add(client)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch(), name="ws-watchdog")
        self._metrics.clients.inc()
        client.say({"type": "welcome", "user": principal.subject, "coalesce_ms": 100})
        try:
            async with asyncio.TaskGroup() as tg:
                sender = tg.create_task(self._send_loop(send, client), name="ws-send")
                client.sender = sender
                receiver = tg.create_task(self._receive_loop(websocket, client), name="ws-recv")
                await asyncio.wait({sender, receiver}, return_when="FIRST_COMPLETED")
                for task in (sender, receiver):
                    task.cancel()
        except* (WebSocketDisconnect, OSError, RuntimeError, TimeoutError) as group:
            log.debug("websocket closed: %r", group.exceptions[0])
        finally:
            self._fanout.remove(client)
            self._clients.discard(client)
            self._metrics.clients.dec()
            self._metrics.coalesced.inc(client.buffer.coalesced)
            self._count_sent()
            # A stalled client's socket may never take the close frame: don't wait for it.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await websocket.close()

    async def _watch(self) -> None:
        # One timer for every client instead of two per message: heartbeats for idle clients,
        # and closing a client whose send has been blocked for SEND_TIMEOUT_S.
        loop = asyncio.get_running_loop()
        while self._clients:
            await asyncio.sleep(WATCH_S)
            self._count_sent()
            now = loop.time()
            for client in list(self._clients):
                since = client.sending_since
                if since is not None and now - since > self._send_timeout_s:
                    log.info("closing a websocket client blocked for %.0f s", now - since)
                    if client.sender is not None:
                        client.sender.cancel()
                elif since is None and now - client.last_sent >= self._heartbeat_s:
                    client.heartbeat_due = True
                    client.ready.set()

    def _count_sent(self) -> None:
        for kind, n in self._sent.items():
            self._metrics.messages.labels(kind).inc(n)
        self._sent.clear()

    async def _login(self, websocket: WebSocket) -> Principal | None:
        token = websocket.query_params.get("token")
        try:
            if not token:
                token = await self._first_message_token(websocket)
            return await self._authenticate(token)
        except (NotAuthenticated, ProtocolError, TimeoutError) as exc:
            self._metrics.refused.inc()
            with contextlib.suppress(Exception):
                await websocket.send_text(_dump({"type": "error", "error": str(exc)}))
                await websocket.close(CLOSE_UNAUTHORIZED, "unauthorized")
            return None
        except WebSocketDisconnect:
            return None

    @staticmethod
    async def _first_message_token(websocket: WebSocket) -> str:
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            msg = parse_client_message(await _receive_text(websocket))
        if msg.type != "auth":
            raise NotAuthenticated("first message must be auth")
        return msg.token

    async def _send_loop(self, send: Send, client: _Client) -> None:
        loop = asyncio.get_running_loop()
        sent = self._sent
        pacer = client.pacer
        while True:
            await client.ready.wait()
            # Only readings are paced. Replies (welcome, subscribed, pong) spending tokens would
            # start a client in debt, and a source exactly at the pacing rate (10 Hz) never pays
            # a debt back: every update would then wait most of a period.
            if len(client.buffer):
                delay = pacer.wait(loop.time())
                if delay > 0:
                    await asyncio.sleep(delay)
            now = loop.time()
            client.ready.clear()
            control, client.control = client.control, []
            readings = client.buffer.take()
            if readings:
                pacer.spend(now)
                sent["readings"] += len(readings)
            if control:
                sent["control"] += len(control)
            elif client.heartbeat_due and not readings:
                control = [_dump({"type": "heartbeat", "ts": int(self._clock() * 1000)})]
                sent["heartbeat"] += 1
            client.heartbeat_due = False
            messages = control + readings
            client.sending_since = now
            for text in messages:
                await send({"type": "websocket.send", "text": text})
            client.sending_since = None
            client.last_sent = now

    async def _receive_loop(self, websocket: WebSocket, client: _Client) -> None:
        while True:
            try:
                msg = parse_client_message(await _receive_text(websocket))
            except ProtocolError as exc:
                client.say({"type": "error", "error": str(exc)})
                continue
            if msg.type == "ping":
                client.say({"type": "pong", "ts": int(self._clock() * 1000)})
            elif msg.type in ("subscribe", "unsubscribe"):
                await self._subscription(client, msg)

    async def _subscription(self, client: _Client, msg: ClientMessage) -> None:
        targets: list[tuple[str, frozenset[str] | None]] = [(m, None) for m in msg.machines]
        unknown = []
        for series_id in msg.series:
            info = await self._resolve(series_id)
            if info is None:
                unknown.append(series_id)
            else:
                key = machine_key(info.site, info.line, info.machine)
                targets.append((key, frozenset({info.tag})))
        for machine, tags in targets:
            if msg.type == "subscribe":
                self._fanout.subscribe(client, machine, tags)
            else:
                self._fanout.unsubscribe(client, machine)
        if msg.alerts:
            self._fanout.watch_alerts(client, msg.type == "subscribe")
        reply: dict[str, Any] = {
            "type": f"{msg.type}d",
            "machines": sorted(client.machines),
            "alerts": client.alerts,
        }
        if unknown:
            reply["unknown_series"] = unknown
        client.say(reply)
        if msg.type == "subscribe":
            await self._snapshot(client, targets)

    async def _snapshot(
        self, client: _Client, targets: list[tuple[str, frozenset[str] | None]]
    ) -> None:
        # A new subscriber gets the newest value of every tag at once, then live updates; a
        # dashboard never shows an empty tile while waiting for the next change. Stored values
        # (this and other hub instances) merged with what this hub announced and may not have
        # committed yet: newest per tag wins.
        for machine, tags in targets:
            newest: dict[str, dict[str, Any]] = {}
            if self._latest is not None:
                site, line, name = machine.split("/")
                try:
                    rows = await self._latest(site, line, name)
                except MillstreamHubError as exc:
                    log.warning("no stored snapshot for %s: %s", machine, exc)
                    rows = []
                for r in rows:
                    newest[r["tag"]] = {"tag": r["tag"], "ts": r["ts"], "v": r["v"], "q": r["q"]}
            for r in self._fanout.newest(machine):
                stored = newest.get(r["tag"])
                if stored is None or r["ts"] >= stored["ts"]:
                    newest[r["tag"]] = r
            readings = sorted(newest.values(), key=lambda r: (r["ts"], r["tag"]))
            if readings:
                client.buffer.add(make_update(machine, readings), tags)
                client.ready.set()


async def _receive_text(websocket: WebSocket) -> str:
    """The next text frame; a binary frame is a protocol error the client is told about."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        raise ProtocolError("frames must be text (JSON); binary frames are not part of /ws")
    return str(text)
