"""Live fan-out internals: shared encoding, tag filters, pacing, heartbeats and stalled clients.

The socket tests serve `LiveEndpoint` alone (uvicorn on a free port, a fan-out the test feeds
directly), so they need no broker or database.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from apitest import free_port, next_message
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.types import Message, Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import wire
from hub.auth import NotAuthenticated, Principal, Role
from hub.live import Fanout, LiveEndpoint, LiveMetrics, Subscriber, make_update, mount_live
from hub.live.fanout import updates_from_batches
from hub.live.pacing import Pacer
from hub.live.server import LiveWebSocketProtocol
from hub.live.ws import SEND_BURST
from hub.storage import TelemetryBatch


def _readings(*tags: str, ts: int = 1) -> list[dict[str, Any]]:
    return [{"tag": t, "ts": ts, "v": 1.5, "q": "good"} for t in tags]


def test_subscribers_share_one_encoded_message_per_update_and_tag_set() -> None:
    fanout = Fanout()
    whole = [Subscriber() for _ in range(3)]
    only_a = [Subscriber() for _ in range(2)]
    only_b, elsewhere = Subscriber(), Subscriber()
    for sub in (*whole, *only_a, only_b, elsewhere):
        fanout.add(sub)
    for sub in whole:
        fanout.subscribe(sub, "s/l/m", None)
    for sub in only_a:
        fanout.subscribe(sub, "s/l/m", frozenset({"a"}))
    fanout.subscribe(only_b, "s/l/m", frozenset({"b"}))
    fanout.subscribe(elsewhere, "s/l/x", None)
    update = make_update("s/l/m", _readings("a", "b", "c"))
    fanout.deliver([update])

    [first], *rest = [sub.buffer.take() for sub in whole]
    assert first is update.message  # encoded once, not per client
    assert all(r[0] is first for r in rest)
    a_messages = [sub.buffer.take()[0] for sub in only_a]
    assert a_messages[0] is a_messages[1]  # one filtered copy for the tag set
    assert [r["tag"] for r in json.loads(a_messages[0])["readings"]] == ["a"]
    [b_message] = only_b.buffer.take()
    assert [r["tag"] for r in json.loads(b_message)["readings"]] == ["b"]
    assert elsewhere.buffer.take() == []
    assert not elsewhere.ready.is_set()

    # A filter that keeps nothing delivers nothing; unsubscribing stops delivery.
    only_b.ready.clear()  # as the sender does when it takes the buffer
    fanout.deliver([make_update("s/l/m", _readings("c"))])
    assert only_b.buffer.take() == []
    assert not only_b.ready.is_set()
    assert [len(sub.buffer.take()) for sub in whole] == [1, 1, 1]
    fanout.unsubscribe(whole[0], "s/l/m")
    fanout.deliver([update])
    assert whole[0].buffer.take() == []
    assert whole[1].buffer.take() == [update.message]


def test_several_pending_updates_merge_into_one_message() -> None:
    sub = Subscriber()
    fanout = Fanout()
    fanout.add(sub)
    fanout.subscribe(sub, "s/l/m", None)
    fanout.deliver([make_update("s/l/m", _readings("a", ts=1))])
    fanout.deliver([make_update("s/l/m", _readings("a", ts=2))])
    [message] = sub.buffer.take()
    assert [r["ts"] for r in json.loads(message)["readings"]] == [1, 2]


def test_only_subscribed_machines_are_encoded() -> None:
    reading = [wire.Reading(tag="t", ts=5, v=1.0, q="good")]
    batches = [
        TelemetryBatch("s", "l", "m1", "src", 1, reading),
        TelemetryBatch("s", "l", "m2", "src", 2, reading),
    ]
    assert [u.machine for u in updates_from_batches(batches)] == ["s/l/m1", "s/l/m2"]
    assert [u.machine for u in updates_from_batches(batches, {"s/l/m2"})] == ["s/l/m2"]


def _send_times(arrivals: list[float], pacer: Pacer) -> list[float]:
    """When a sender sends each update (each one pending from its arrival)."""
    sent = []
    t = 0.0
    for arrival in arrivals:
        t = max(t, arrival)
        t += pacer.wait(t)
        pacer.spend(t)
        sent.append(t)
    return sent


def test_a_late_update_does_not_delay_the_ones_after_it() -> None:
    # 10 Hz source, 100 ms pacing: update 5 arrives 60 ms late.
    arrivals = [k * 0.1 + (0.06 if k == 5 else 0.0) for k in range(30)]
    sent = _send_times(arrivals, Pacer(0.1, SEND_BURST, now=0.0))
    delays = [s - a for s, a in zip(sent, arrivals, strict=True)]
    assert max(delays) < 1e-9  # with a fixed 100 ms gap, updates 6.. would each wait 60 ms


def test_a_source_that_stalls_and_catches_up_is_not_left_behind() -> None:
    # 10 Hz source; updates 10-14 are held up (a broker or network hiccup) and arrive together
    # at 1.45 s, one ms apart. A source exactly at the pacing rate never pays a debt back: with
    # only two sends banked, every later update would wait ~50 ms, for ever.
    arrivals = [1.45 + (k - 10) * 0.001 if 10 <= k < 15 else k * 0.1 for k in range(100)]
    sent = _send_times(arrivals, Pacer(0.1, SEND_BURST, now=0.0))
    delays = [s - a for s, a in zip(sent, arrivals, strict=True)]
    assert max(delays) < 1e-9


def test_pacing_holds_a_fast_source_to_one_send_per_period() -> None:
    arrivals = [k * 0.01 for k in range(1000)]  # 100 updates/s for 10 s
    pacer = Pacer(0.1, SEND_BURST, now=0.0)
    sent = []
    t = 0.0
    while t < 10.0:  # a sender that always has something pending
        t += pacer.wait(t)
        pacer.spend(t)
        sent.append(t)
        t = max(t, next((a for a in arrivals if a > t), 10.0))
    banked = int(SEND_BURST)
    assert 100 <= len(sent) <= 100 + banked  # one per 100 ms, plus what was banked
    gaps = [b - a for a, b in itertools.pairwise(sent[banked:])]
    assert min(gaps) >= 0.1 - 1e-9


TOKEN = "good-token"


async def _authenticate(token: str) -> Principal:
    if token != TOKEN:
        raise NotAuthenticated("bad token")
    return Principal("tester", Role.VIEWER)


async def _no_series(series_id: int) -> None:
    return None


# The endpoint under uvicorn's own protocol (every message through ASGI `send`) and under the
# hub's, which writes the frames of clients that keep up straight to their sockets.
PROTOCOLS = pytest.mark.parametrize(
    "ws_protocol", ["websockets-sansio", LiveWebSocketProtocol], ids=["asgi", "frame-writer"]
)


@contextlib.asynccontextmanager
async def _serve(
    endpoint: LiveEndpoint,
    ws_protocol: str | type[asyncio.Protocol] = LiveWebSocketProtocol,
    asgi_sends: Counter[str] | None = None,
    *,
    deflate: bool = False,
) -> AsyncIterator[str]:
    """Serve `endpoint` at /ws; `asgi_sends` counts, by type, the messages that went through
    the server's ASGI `send` (and so not through the frame writer)."""
    app = FastAPI()
    mount_live(app, endpoint)
    asgi: Any = app
    if asgi_sends is not None:

        async def counting(scope: Scope, receive: Receive, send: Send) -> None:
            async def counted(message: Message) -> None:
                if message["type"] == "websocket.send":
                    asgi_sends[json.loads(message["text"])["type"]] += 1
                await send(message)

            await app(scope, receive, counted)

        asgi = counting
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            asgi,
            host="127.0.0.1",
            port=port,
            log_config=None,
            ws_per_message_deflate=deflate,
            ws=ws_protocol,
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(600):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started
        yield f"ws://127.0.0.1:{port}/ws?token={TOKEN}"
    finally:
        server.should_exit = True
        await task


async def _drain(ws: ClientConnection) -> None:
    async with asyncio.timeout(30):
        while True:
            await ws.recv()


@PROTOCOLS
@pytest.mark.asyncio(loop_scope="session")
async def test_an_idle_client_gets_heartbeats(ws_protocol: str | type[asyncio.Protocol]) -> None:
    endpoint = LiveEndpoint(
        Fanout(), _authenticate, _no_series, LiveMetrics(CollectorRegistry()), heartbeat_s=1.5
    )
    async with _serve(endpoint, ws_protocol) as url, connect(url, proxy=None) as ws:
        await next_message(ws, "welcome")
        first = await next_message(ws, "heartbeat")
        second = await next_message(ws, "heartbeat")
        assert second["ts"] > first["ts"]


@PROTOCOLS
@pytest.mark.asyncio(loop_scope="session")
async def test_a_client_that_stops_reading_is_closed_and_others_carry_on(
    ws_protocol: str | type[asyncio.Protocol],
) -> None:
    fanout = Fanout()
    endpoint = LiveEndpoint(
        fanout, _authenticate, _no_series, LiveMetrics(CollectorRegistry()), send_timeout_s=2.0
    )
    subscribe = json.dumps({"type": "subscribe", "machines": ["s/l/m"]})
    async with _serve(endpoint, ws_protocol) as url:
        # A tiny receive buffer and a client library that stops reading after one message:
        # the hub's sends to it block once the kernel buffers are full.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        host, port = url.removeprefix("ws://").split("/")[0].split(":")
        sock.connect((host, int(port)))
        sock.setblocking(False)
        stalled_conn = connect(url, sock=sock, proxy=None, max_queue=1, max_size=None)
        async with stalled_conn as stalled, connect(url, proxy=None, max_size=None) as healthy:
            for ws in (stalled, healthy):
                await next_message(ws, "welcome")
                await ws.send(subscribe)
                await next_message(ws, "subscribed")
            big = [f"tag{i}" for i in range(2000)]
            closed = False
            for round_no in range(200):
                fanout.deliver([make_update("s/l/m", _readings(*big, ts=round_no))])
                fanout.deliver([make_update("s/l/m", _readings("marker", ts=10_000 + round_no))])
                async with asyncio.timeout(10):
                    while True:  # the healthy client keeps getting every round
                        msg = await next_message(healthy, "readings")
                        if any(r["ts"] == 10_000 + round_no for r in msg["readings"]):
                            break
                if fanout.clients == 1:  # the hub dropped the stalled client
                    closed = True
                    break
                await asyncio.sleep(0.1)
            assert closed, "a client blocked for send_timeout_s was not closed"
            with pytest.raises(ConnectionClosed):
                await _drain(stalled)


@PROTOCOLS
@pytest.mark.asyncio(loop_scope="session")
async def test_a_source_at_the_pacing_rate_is_not_delayed_by_replies(
    ws_protocol: str | type[asyncio.Protocol],
) -> None:
    # welcome and subscribed go out first; if they spent send tokens, a 10 Hz source would
    # start (and stay) in debt and every update would wait most of a 100 ms period.
    fanout = Fanout()
    endpoint = LiveEndpoint(fanout, _authenticate, _no_series, LiveMetrics(CollectorRegistry()))
    async with _serve(endpoint, ws_protocol) as url, connect(url, proxy=None) as ws:
        await next_message(ws, "welcome")
        await ws.send(json.dumps({"type": "subscribe", "machines": ["s/l/m"]}))
        await next_message(ws, "subscribed")
        loop = asyncio.get_running_loop()
        delays = []
        for k in range(20):
            sent = loop.time()
            fanout.deliver([make_update("s/l/m", _readings("a", ts=k))])
            msg = await next_message(ws, "readings", within=5)
            assert msg["readings"][-1]["ts"] == k
            delays.append(loop.time() - sent)
            await asyncio.sleep(max(0.0, sent + 0.1 - loop.time()))
        delays.sort()
        assert delays[len(delays) // 2] < 0.04, delays


@pytest.mark.asyncio(loop_scope="session")
async def test_updates_to_a_client_that_keeps_up_skip_asgi_and_arrive_whole() -> None:
    fanout = Fanout()
    endpoint = LiveEndpoint(fanout, _authenticate, _no_series, LiveMetrics(CollectorRegistry()))
    asgi_sends: Counter[str] = Counter()
    async with (
        _serve(endpoint, LiveWebSocketProtocol, asgi_sends) as url,
        connect(url, proxy=None, max_size=None) as ws,
    ):
        await next_message(ws, "welcome")
        await ws.send(json.dumps({"type": "subscribe", "machines": ["s/l/m"]}))
        await next_message(ws, "subscribed")
        # Frames of every length encoding (7-bit, 16-bit and 64-bit lengths).
        for k, tags in enumerate([1, 10, 3000]):
            update = make_update("s/l/m", _readings(*(f"t{i}" for i in range(tags)), ts=k))
            fanout.deliver([update])
            msg = await next_message(ws, "readings", within=5)
            assert msg == json.loads(update.message)
            await asyncio.sleep(0.1)  # one pacing period: the next update may go at once
    assert asgi_sends["readings"] == 0
    assert asgi_sends["welcome"] == asgi_sends["subscribed"] == 1


@pytest.mark.asyncio(loop_scope="session")
async def test_a_compressed_connection_gets_its_frames_from_the_protocol() -> None:
    # With per-message deflate negotiated a prepared (uncompressed) frame is not what this
    # client's protocol would send: every update goes through ASGI and arrives intact.
    fanout = Fanout()
    endpoint = LiveEndpoint(fanout, _authenticate, _no_series, LiveMetrics(CollectorRegistry()))
    asgi_sends: Counter[str] = Counter()
    async with (
        _serve(endpoint, LiveWebSocketProtocol, asgi_sends, deflate=True) as url,
        connect(url, proxy=None, compression="deflate") as ws,
    ):
        assert ws.protocol.extensions, "the client and server did not agree on deflate"
        await next_message(ws, "welcome")
        await ws.send(json.dumps({"type": "subscribe", "machines": ["s/l/m"]}))
        await next_message(ws, "subscribed")
        for k in range(3):
            update = make_update("s/l/m", _readings("a", "b", ts=k))
            fanout.deliver([update])
            assert await next_message(ws, "readings", within=5) == json.loads(update.message)
    assert asgi_sends["readings"] == 3
