"""Redis shell for live views: latest values per series, and live updates over pub/sub.

`publish(batches)` is called as batches commit; it only merges them into an in-memory map of
pending latest values (bounded by the number of series) and never waits on Redis, so Redis being
slow or down cannot hold up ingest. A writer task flushes that map to Redis (one forward-only
script call per machine); while Redis is down the map keeps only the newest value per series and
is written when Redis returns.

`announce(batches)` is called as batches are validated, when the instance also hands them to its
own WebSocket clients (hub/live): the same readings go out on their site's pub/sub channel
(`{channel}:{site}`), tagged with this instance's `origin`, so a client of any instance gets the
same updates with the same semantics as one of the instance that received the batch — with Redis
or without. Each instance subscribes only to the channels of the sites its own clients watch
(`watch(sites)`, called by the fan-out as the first client of a site arrives and the last
leaves), so it receives only what someone there wants, and relays other instances' updates to
them (`subscribe_updates()`). Announced updates wait in a bounded queue; while Redis is down the
oldest are dropped (a live view wants now).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from hub.bridge.metrics import BridgeMetrics
from hub.bridge.redis.model import (
    Latest,
    Pending,
    Update,
    channel_changes,
    channels_for,
    coalesce,
    decode_latest,
    decode_update,
    encode_latest,
    encode_update,
    merge,
    site_channel,
    updates_of,
)
from hub.config import RedisConfig
from hub.errors import LiveUnavailable
from hub.storage.model import TelemetryBatch
from millstream_common.backoff import Backoff

__all__ = ["RedisLive"]

log = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 5.0
SUBSCRIBER_QUEUE = 1_000  # updates buffered per local subscriber; a slow one loses the oldest
ANNOUNCE_QUEUE = 10_000  # updates waiting to go out; while Redis is down the oldest are dropped
# How long the subscriber waits for a message before it looks at `watch()` changes again: the
# first client of a site gets other instances' updates of it at most this much later.
SUBSCRIBE_POLL_S = 0.1

# Forward-only HSET: a field is replaced unless the stored reading is newer (ts from its JSON).
# KEYS[1] the machine's hash; ARGV = tag, ts, value JSON, tag, ts, value JSON, …
_FORWARD_HSET = """
local n = 0
for i = 1, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local older = true
  if cur then
    local ts = tonumber(string.match(cur, '"ts":(%-?%d+)'))
    if ts and ts > tonumber(ARGV[i + 1]) then older = false end
  end
  if older then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    n = n + 1
  end
end
return n
"""

_REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


class RedisLive:
    """Latest values and live updates through Redis; `await live.run(stop)` runs the shell."""

    def __init__(self, cfg: RedisConfig, metrics: BridgeMetrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics or BridgeMetrics()
        self._client: aioredis.Redis = aioredis.from_url(
            cfg.url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            health_check_interval=10,
            # No retries inside redis-py (its default backs off up to 10 s per call, several
            # times): the writer and subscriber loops own reconnecting, with their own backoff.
            # The asyncio Retry class: redis-py 8 warns when the synchronous one is passed.
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self._client.register_script(_FORWARD_HSET)
        self._pending: Pending = {}
        self._announced: deque[Update] = deque(maxlen=ANNOUNCE_QUEUE)
        # Which instance announced an update: its own come back over pub/sub and are skipped.
        self.origin = uuid.uuid4().hex[:16]
        self._dirty = asyncio.Event()
        self._queues: set[asyncio.Queue[Update]] = set()
        self._sites: frozenset[str] = frozenset()  # sites this instance's clients watch
        self._interest = asyncio.Event()  # `_sites` changed since the subscriber last joined
        self._joined: frozenset[str] = frozenset()  # channels subscribed on the live connection
        self._connected = False
        self.writer_ok = False
        # Set while the subscriber is connected and subscribed to the channels of every site
        # passed to the latest `watch()`; cleared by a `watch()` that changes them until done.
        self.subscribed = asyncio.Event()

    def health(self) -> dict[str, Any]:
        """Detail for `/health/ready`."""
        return {
            "latest_writer": "ok" if self.writer_ok else "unavailable",
            "subscribed": self._connected,
            "channels": len(self._joined),
            "pending_machines": len(self._pending),
        }

    @property
    def channels(self) -> frozenset[str]:
        """The per-site channels the subscriber is subscribed to now."""
        return self._joined

    def watch(self, sites: frozenset[str]) -> None:
        """Receive other instances' updates of these sites only, from now on (never blocks;
        the subscriber joins and leaves channels within `SUBSCRIBE_POLL_S`)."""
        if sites != self._sites:
            self._sites = sites
            self._interest.set()
            self.subscribed.clear()

    # -- ingest side ------------------------------------------------------------------------------

    def publish(self, batches: Sequence[TelemetryBatch]) -> None:
        """Record committed batches' latest values for Redis (never blocks; called on commit)."""
        if batches:
            coalesce(batches, self._pending)
            self._dirty.set()

    def announce(self, batches: Sequence[TelemetryBatch]) -> None:
        """Send validated batches' readings to the other instances' clients (never blocks)."""
        updates = updates_of(self.origin, batches)
        if updates:
            self._announced.extend(updates)
            self._dirty.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Write latest values and relay pub/sub updates until `stop` (reconnects by itself)."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._write_loop(stop), name="redis-latest")
                tg.create_task(self._subscribe_loop(stop), name="redis-subscribe")
        finally:
            # Closed even if this task is cancelled again while stopping (a task group that
            # aborts, or a loop torn down, cancels a stopping task once more): an interrupted
            # aclose() leaves sockets open until the garbage collector finds them.
            await _to_the_end(self._close())

    async def _close(self) -> None:
        with contextlib.suppress(*_REDIS_ERRORS):
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                await self._client.aclose()

    async def _write_loop(self, stop: asyncio.Event) -> None:
        backoff = Backoff(0.2, 5.0)
        while not stop.is_set():
            await _wait_any(self._dirty, stop, 1.0)
            if not self._pending and not self._announced:
                continue
            batch, self._pending = self._pending, {}
            updates = list(self._announced)
            self._announced.clear()
            self._dirty.clear()
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_S * 2):
                    await self._write(batch, updates)
            except _REDIS_ERRORS as exc:
                # Keep the newest value per series for the next attempt: what arrived meanwhile
                # wins over what failed unless it is older.
                self._pending = merge(batch, self._pending)
                self._dirty.set()
                self.metrics.redis_errors.inc()
                self.metrics.redis_up.set(0)
                if self.writer_ok:
                    log.warning("redis: latest values not written, retrying: %s", exc)
                self.writer_ok = False
                await _wait(stop, backoff.next_delay())
                continue
            if not self.writer_ok:
                log.info("redis: writing latest values")
            self.writer_ok = True
            self.metrics.redis_up.set(1)
            backoff.reset()

    async def _write(self, batch: Pending, updates: Sequence[Update]) -> None:
        prefix, channel = self.cfg.key_prefix, self.cfg.channel
        async with self._client.pipeline(transaction=False) as pipe:
            for machine, values in batch.items():
                args: list[str | int] = []
                for tag, latest in values.items():
                    args += [tag, latest.ts, encode_latest(latest)]
                await self._script(keys=[prefix + machine], args=args, client=pipe)
            for update in updates:
                pipe.publish(site_channel(channel, update.site), encode_update(update))
            await pipe.execute()
        if updates:
            self.metrics.redis_live_messages.labels("published").inc(len(updates))

    # -- live side --------------------------------------------------------------------------------

    async def _subscribe_loop(self, stop: asyncio.Event) -> None:
        backoff = Backoff(0.2, 5.0)
        while not stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            received = self.metrics.redis_live_messages.labels("received")
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_S):
                    # Connected even with no channel to join: a dead Redis shows at once.
                    await pubsub.connect()  # type: ignore[no-untyped-call,unused-ignore]
                    await self._join(pubsub)
                self._connected = True
                backoff.reset()
                while not stop.is_set():
                    if self._interest.is_set():
                        async with asyncio.timeout(REDIS_TIMEOUT_S):
                            await self._join(pubsub)
                    # A short wait: `watch()` changes are applied between two waits (a read
                    # cannot be interrupted to subscribe on the same connection).
                    msg = await pubsub.get_message(timeout=SUBSCRIBE_POLL_S)
                    if msg is not None and msg.get("type") == "message":
                        received.inc()
                        update = decode_update(msg["data"])
                        if update is not None and update.origin != self.origin:
                            self._fan_out(update)
            except _REDIS_ERRORS as exc:
                if self._connected:
                    log.warning("redis: live updates interrupted, resubscribing: %s", exc)
                self._connected = False
                self.subscribed.clear()
                self._left_all()
                self.metrics.redis_errors.inc()
                await _wait(stop, backoff.next_delay())
            finally:
                self._left_all()
                with contextlib.suppress(*_REDIS_ERRORS):
                    async with asyncio.timeout(REDIS_TIMEOUT_S):
                        # Untyped before redis-py 8, typed since: the ignore serves both.
                        await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        self._connected = False
        self.subscribed.clear()

    def _left_all(self) -> None:
        # A new connection starts with no channel; the next one joins them all again.
        self._joined = frozenset()
        self.metrics.redis_live_channels.set(0)

    async def _join(self, pubsub: PubSub) -> None:
        """Subscribe to the channels of the watched sites, unsubscribe from the others."""
        self._interest.clear()
        wanted = channels_for(self.cfg.channel, self._sites)
        join, leave = channel_changes(self._joined, wanted)
        if join:
            await pubsub.subscribe(*join)
        if leave:
            await pubsub.unsubscribe(*leave)
        self._joined = wanted
        self.metrics.redis_live_channels.set(len(wanted))
        if not self._interest.is_set():  # no `watch()` while this waited on Redis
            self.subscribed.set()

    def _fan_out(self, update: Update) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()  # a slow client loses the oldest update, not the newest
            queue.put_nowait(update)

    async def subscribe_updates(self) -> AsyncIterator[Update]:
        """Every live update the other hub instances announce for the sites passed to `watch()`,
        from now on, until the caller stops (this instance's own were delivered locally when
        announced)."""
        queue: asyncio.Queue[Update] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._queues.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.discard(queue)

    async def latest(self, site: str, line: str, machine: str) -> dict[str, Latest]:
        """Latest value per tag of one machine; raises `LiveUnavailable` if Redis is down."""
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                raw = await self._client.hgetall(f"{self.cfg.key_prefix}{site}/{line}/{machine}")
        except _REDIS_ERRORS as exc:
            raise LiveUnavailable(f"redis: {exc}") from exc
        out: dict[str, Latest] = {}
        for tag, value in raw.items():
            latest = decode_latest(value)
            if latest is not None:
                out[tag.decode() if isinstance(tag, bytes) else str(tag)] = latest
        return out


async def _to_the_end(coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro` to its end even if the caller is cancelled meanwhile; then re-raise that."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])  # bounded: the close has its own timeout
        raise


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


async def _wait_any(a: asyncio.Event, b: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
