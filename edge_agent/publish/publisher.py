"""MQTT QoS 1 publisher: two lanes (live first, backlog paced), receipts, reconnect with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import wire
from edge_agent.buffer import Batch, Buffer
from edge_agent.cancel import recheck_cancel
from edge_agent.errors import DiskFull
from edge_agent.publish.contract import Commands, Contract
from edge_agent.publish.settings import PublisherSettings
from edge_agent.publish.sparkplug import SparkplugEdge
from edge_agent.publish.stats import PublishStats
from edge_agent.publish.tracing import BatchTracer
from millstream_common.backoff import backoff_delay
from millstream_common.ratelimit import TokenBucket

__all__ = ["Publisher"]

log = logging.getLogger(__name__)


class _Stop(Exception):  # noqa: N818 -- control flow, never escapes this module
    """Raised inside a session to end it gracefully."""


class Publisher:
    """Publish buffered batches; delete them on receipt (or on PUBACK when receipts are off)."""

    def __init__(
        self,
        settings: PublisherSettings,
        buffer: Buffer,
        contract: Contract,
        *,
        clock: Callable[[], float] = time.time,
        rnd: Callable[[], float] = random.random,
        commands: Commands | None = None,
        sparkplug: SparkplugEdge | None = None,
        tracing: BatchTracer | None = None,
    ) -> None:
        """`sparkplug`: publish as a Sparkplug B edge node instead of the wire contract's
        telemetry topics (edge_agent/publish/sparkplug.py). `tracing`: hears each batch's
        PUBACK and receipt (edge_agent/publish/tracing.py)."""
        self.tracing = tracing
        self.sparkplug = sparkplug
        self.settings = settings
        self.buffer = buffer
        self.contract = contract
        self.commands = commands
        self.stats = PublishStats()
        self._clock = clock
        self._rnd = rnd
        self._status: bytes | None = None
        self._status_dirty = asyncio.Event()
        self._retained: dict[str, bytes] = {}
        self._retained_pending: set[str] = set()  # changed since the lane last published
        self._retained_dirty = asyncio.Event()
        self._stop = asyncio.Event()
        self._window = asyncio.Semaphore(settings.inflight)
        # The backlog may use at most 3/4 of the window, so live batches always find a slot.
        self._backlog_window = asyncio.Semaphore(max(1, settings.inflight * 3 // 4))
        self._unacked: set[int] = set()  # seqs sent in this session without PUBACK yet
        self._drained = asyncio.Event()  # set while `_unacked` is empty
        self._drained.set()
        self._warned_undigested = False
        # The hub instances' drain budgets (topic → readings/s for us), docs/agent.md.
        self._budgets: dict[str, float] = {}
        # Backlog batches sent and not receipted yet: seq → (readings, when sent); and how many
        # readings may be so, growing by what is receipted from one batch per session on (a
        # slow start: a fleet reconnecting at once must not queue its first bursts for a hub
        # whose budget does not know it yet).
        self._ahead: dict[int, tuple[int, float]] = {}
        self._ahead_cap = float(settings.max_batch)
        self._receipted = asyncio.Event()

    # -- public ------------------------------------------------------------------------------
    def set_status(self, payload: bytes) -> None:
        """Publish this agent status (retained) now if connected, else as birth on connect."""
        self._status = payload
        self._status_dirty.set()

    def set_retained(self, messages: Mapping[str, bytes]) -> None:
        """Retained messages (topic → payload: machine meta and status) to publish on every
        connect, and now if connected. Topics already held keep their message unless given."""
        changed = {t for t, p in messages.items() if self._retained.get(t) != p}
        if changed:
            self._retained.update(messages)
            self._retained_pending |= changed
            self._retained_dirty.set()

    def stop(self) -> None:
        """Ask `run()` to end: publish `offline` retained and disconnect cleanly."""
        self._stop.set()

    async def run(self) -> None:
        """Connect, publish, reconnect with backoff; returns after `stop()`."""
        attempt = 0
        while not self._stop.is_set():
            try:
                async with asyncio.timeout(self.settings.connect_timeout):
                    client = self._client()
                    await client.__aenter__()
            except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
                self._note_error(f"connect failed: {exc}")
            else:
                attempt = 0
                await self._session_guarded(client)
            if self._stop.is_set():
                return
            # A cancel that met a connection error ended in `except*`, not here: honour it
            # rather than reconnect.
            recheck_cancel()
            delay = backoff_delay(
                attempt, self.settings.reconnect_min, self.settings.reconnect_max, self._rnd()
            )
            attempt += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()

    # -- connection --------------------------------------------------------------------------
    def _client(self) -> aiomqtt.Client:
        s = self.settings
        tls = None
        if s.tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=s.ca_file,
                certfile=s.cert_file,
                keyfile=s.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        v5 = s.protocol == "mqttv5"
        session: dict[str, Any] = {"clean_session": False}
        if v5:
            # MQTT v5 keeps a session by its expiry interval rather than clean_session.
            connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            connect.SessionExpiryInterval = s.session_expiry_s
            session = {"clean_start": False, "properties": connect}
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.client_id,
            username=s.username,
            password=s.password,
            # Persistent session: receipts sent while we were away are queued for us.
            **session,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            keepalive=s.keepalive,
            will=self._will(),
            tls_params=tls,
            max_inflight_messages=s.inflight,
            timeout=s.connect_timeout,
            # Batches are already large; Nagle would only add latency to PUBACK round trips.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        # Incoming messages are acknowledged by `_incoming` once handled, not on arrival: a
        # command is journalled before the broker may forget it (paho's manual ack; aiomqtt
        # exposes no switch of its own).
        client._client.manual_ack_set(True)
        # Up to a window of batches awaits PUBACK by design (plus status, retained, results):
        # aiomqtt's default of 10 logged "There are N pending publish calls." thousands of
        # times a minute under load (issue 28).
        client.pending_calls_threshold = s.inflight + 32
        return client

    def _will(self) -> aiomqtt.Will:
        if self.sparkplug is not None:
            # A Sparkplug node's will is its NDEATH (not retained); the agent's own status says
            # offline on a clean stop only.
            topic, payload = self.sparkplug.will()
            return aiomqtt.Will(topic, payload, qos=1, retain=False)
        return aiomqtt.Will(
            self.contract.status_topic, self.contract.offline_status(), qos=1, retain=True
        )

    async def _session_guarded(self, client: aiomqtt.Client) -> None:
        self.stats.connected = True
        self.stats.connects += 1
        log.info("connected to %s:%d", self.settings.host, self.settings.port)
        graceful = False
        try:
            await self._session(client)
        except* _Stop:
            graceful = True
        except* (aiomqtt.MqttError, TimeoutError, OSError) as group:
            self._note_error(f"connection lost: {group.exceptions[0]}")
        finally:
            self.stats.connected = False
            self._ahead.clear()  # receipts of this session's batches may never come
            self._ahead_cap = float(self.settings.max_batch)
            # Sent but never PUBACKed in this session: send again first thing next session.
            lost = list(self._unacked)
            self._unacked.clear()
            self._drained.set()
            if lost:
                # With the disk full they are sent again after the receipt timeout instead.
                with contextlib.suppress(DiskFull):
                    await self.buffer.unclaim(lost)
        if graceful:
            await self._goodbye(client)
        else:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError, OSError):
                async with asyncio.timeout(1):
                    await client.__aexit__(None, None, None)

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        try:
            async with asyncio.timeout(2):
                await client.publish(
                    self.contract.status_topic, self.contract.offline_status(), qos=1, retain=True
                )
                await client.__aexit__(None, None, None)
        except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
            self._note_error(f"clean disconnect failed: {exc}")

    async def _session(self, client: aiomqtt.Client) -> None:
        # What was committed while we were away is backlog, not live: leave it to the paced
        # backlog lane (it is all in SQLite), so fresh readings go first from now on.
        self.buffer.take_live()
        if self.settings.receipts:
            await client.subscribe(self.contract.receipt_topic, qos=1)
            recheck_cancel()
            # Our own hub's: how fast the backlog may go (a broker whose ACL predates it refuses
            # the subscription; the backlog then keeps to backlog_rate alone).
            self._budgets.clear()
            await client.subscribe(wire.DRAIN_FILTER, qos=1)
            recheck_cancel()
        if self.commands is not None:
            await client.subscribe(self.commands.topic, qos=1)
            recheck_cancel()
        if self.sparkplug is not None:
            for topic in self.sparkplug.subscriptions():
                await client.subscribe(topic, qos=1)
                recheck_cancel()
            # Births before any data of this connection (and again on request).
            self.sparkplug.ask_rebirth()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._incoming(client), name="publish-incoming")
            if self.sparkplug is not None:
                tg.create_task(self._births_lane(client, self.sparkplug), name="publish-births")
            if self.commands is not None:
                tg.create_task(self._results_lane(client, self.commands), name="publish-results")
            tg.create_task(self._status_lane(client), name="publish-status")
            tg.create_task(self._retained_lane(client), name="publish-retained")
            tg.create_task(self._live_lane(client, tg), name="publish-live")
            tg.create_task(self._backlog_lane(client, tg), name="publish-backlog")
            await self._stop.wait()
            # Give batches already on the wire a moment to be PUBACKed, then end the session.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1):
                    await self._drained.wait()
            raise _Stop

    # -- lanes -------------------------------------------------------------------------------
    async def _incoming(self, client: aiomqtt.Client) -> None:
        # Also the disconnect detector: the iterator raises MqttError when the link drops.
        async for message in client.messages:
            raw = message.payload
            payload = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw).encode()
            if self.commands is not None and message.topic.matches(self.commands.topic):
                await self.commands.receive(payload)
            elif self.sparkplug is not None and self.sparkplug.handle(str(message.topic), payload):
                pass
            elif message.topic.matches(wire.DRAIN_FILTER):
                self._drain_budget(str(message.topic), payload)
            else:
                await self._receipt(str(message.topic), payload)
            if message.qos > 0:
                client._client.ack(message.mid, message.qos)  # manual ack: see _client()

    async def _results_lane(self, client: aiomqtt.Client, commands: Commands) -> None:
        while True:
            commands.results_ready.clear()
            for command_id, payload in await commands.unsent():
                await client.publish(commands.result_topic, payload, qos=1)
                recheck_cancel()
                await commands.sent(command_id)
            await commands.results_ready.wait()

    async def _receipt(self, topic: str, payload: bytes) -> None:
        try:
            batches = self.contract.parse_receipt(payload)
        except ValueError as exc:
            log.warning("ignoring malformed receipt on %s: %s", topic, exc)
            return
        if not batches and not self._warned_undigested:
            # Seqs alone prove nothing about whose payload was stored: nothing is deleted.
            log.warning(
                "receipts name no batch digests: the hub is older than this agent and its "
                "receipts delete nothing; upgrade the hub (the buffer keeps everything)"
            )
            self._warned_undigested = True
        self.stats.receipts += 1
        self.stats.last_receipt_at = self._clock()
        if self.tracing is not None:
            self.tracing.confirmed([seq for seq, _digest in batches])
        if self._ahead:
            for seq, _digest in batches:
                if (ahead := self._ahead.pop(seq, None)) is not None:
                    self._ahead_cap += ahead[0]
            self._receipted.set()
        # With the disk full, deleting needs room too: the batches are sent again and
        # receipted again.
        with contextlib.suppress(DiskFull):
            self.stats.acked_readings += await self.buffer.ack(batches)

    def _drain_budget(self, topic: str, payload: bytes) -> None:
        try:
            budget = wire.parse_drain(payload)
        except wire.PayloadError as exc:
            log.warning("ignoring a malformed drain budget on %s: %s", topic, exc)
            return
        if budget is None:  # that hub instance is gone
            self._budgets.pop(topic, None)
        else:
            self._budgets[topic] = budget.per_agent
        self.stats.drain_budget = self.backlog_rate()

    @property
    def backlog_unreceipted(self) -> int:
        """Backlog readings sent in this session and not receipted yet."""
        return sum(n for n, _ in self._ahead.values())

    def backlog_rate(self) -> float:
        """Readings/s the backlog lane may send: backlog_rate, or less if the hubs say so."""
        if not self._budgets:
            return self.settings.backlog_rate
        return max(1.0, min(self.settings.backlog_rate, sum(self._budgets.values())))

    async def _births_lane(self, client: aiomqtt.Client, edge: SparkplugEdge) -> None:
        while True:
            await edge.rebirth.wait()
            await edge.host_online.wait()
            # Queued in one step (paho's publish does not block), so no data message of this
            # node can come between its NBIRTH and its DBIRTHs.
            for topic, payload in edge.births():
                client._client.publish(topic, payload, qos=1)

    async def _may_send(self) -> bool:
        """Wait until sending is allowed; True when that meant waiting.

        A Sparkplug node sends nothing while its primary host is offline (its STATE) nor before
        its births: readings wait in the buffer and go out as backlog, as history, later."""
        if self.sparkplug is None or self.sparkplug.clear_to_send.is_set():
            return False
        await self.sparkplug.clear_to_send.wait()
        return True

    async def _status_lane(self, client: aiomqtt.Client) -> None:
        while True:
            await self._status_dirty.wait()
            self._status_dirty.clear()
            if self._status is not None:
                await client.publish(self.contract.status_topic, self._status, qos=1, retain=True)
                recheck_cancel()

    async def _retained_lane(self, client: aiomqtt.Client) -> None:
        # Once per session, not only once: a broker without persistence forgets retained
        # messages when it restarts.
        todo = sorted(self._retained)
        self._retained_pending.clear()
        while True:
            self._retained_dirty.clear()
            for topic in todo:
                await client.publish(topic, self._retained[topic], qos=1, retain=True)
                recheck_cancel()
            await self._retained_dirty.wait()
            todo, self._retained_pending = sorted(self._retained_pending), set()

    async def _live_lane(self, client: aiomqtt.Client, tg: asyncio.TaskGroup) -> None:
        while True:
            await self.buffer.live_ready.wait()
            if await self._may_send():
                # Committed while the host was away: backlog (sent as history), not live. They
                # are in SQLite, unclaimed; the backlog lane takes them.
                self.buffer.take_live()
                continue
            refs = self.buffer.take_live()
            try:
                batches = await self.buffer.claim_live(refs, self.settings.max_batch)
            except DiskFull:
                continue  # still in SQLite, unclaimed: the backlog lane sends them later
            for batch in batches:
                await self._window.acquire()
                self._send(client, tg, batch, live=True)

    async def _backlog_lane(self, client: aiomqtt.Client, tg: asyncio.TaskGroup) -> None:
        s = self.settings
        bucket = TokenBucket(s.backlog_rate, max(s.backlog_rate / 10, s.max_batch), self._clock())
        while True:
            await self._may_send()
            if s.receipts:
                # Before claiming, not only before sending: a claim starts the receipt timeout.
                await self._room_ahead(s.max_batch)
            try:
                # Overdue receipts first (same seq, same readings), then the oldest unsent data.
                batches = await self.buffer.due(s.receipt_timeout, limit=s.inflight)
                republish = bool(batches)
                if not batches:
                    # Claim a window's worth at once (one writer round trip per many batches)
                    # but no more than the pace sends in a second: a claim starts the receipt
                    # timeout, and batches claimed at 200,000/s but paced at a drain budget of
                    # a few hundred would time out before they were even sent.
                    # Nor more than may be out unreceipted: right after connecting, before the
                    # retained budgets arrive, the pace is still backlog_rate.
                    pace = self.backlog_rate() / s.max_batch
                    limit = min(s.inflight // 4, int(pace))
                    if s.receipts:
                        room = min(self._ahead_limit(), self._ahead_cap) - self.backlog_unreceipted
                        limit = min(limit, int(room // s.max_batch))
                    batches = await self.buffer.claim_backlog(s.max_batch, limit=max(1, limit))
            except DiskFull:
                # Claiming writes a seq; the writer makes room (reserve, oldest dropped).
                await asyncio.sleep(1.0)
                continue
            if not batches:
                await asyncio.sleep(0.2)
                continue
            for batch in batches:
                if republish:
                    self.stats.republished_batches += 1
                await self._pace(bucket, batch.n)
                if s.receipts:
                    await self._room_ahead(batch.n)
                    self._ahead[batch.seq] = (batch.n, self._clock())
                await self._backlog_window.acquire()
                await self._window.acquire()
                self._send(client, tg, batch, live=False)

    def _ahead_limit(self) -> float:
        """Backlog readings that may be out unreceipted at the pace allowed now."""
        return self.backlog_rate() * self.settings.backlog_ahead_s

    async def _room_ahead(self, n: int) -> None:
        """Wait until `n` more backlog readings fit unreceipted: `backlog_ahead_s` of the pace,
        and no more than the slow start has reached."""
        while self._ahead:
            now = self._clock()
            # One whose receipt is overdue is sent again by `due` (and counted again then).
            for seq in [q for q, (_, sent) in self._ahead.items()
                        if now - sent > self.settings.receipt_timeout]:  # fmt: skip
                del self._ahead[seq]
            ahead = sum(k for k, _ in self._ahead.values())
            # The cap never grows past what the limit can use, so it is a slow start only.
            limit = self._ahead_limit()
            self._ahead_cap = min(self._ahead_cap, max(limit, self.settings.max_batch))
            if not ahead or ahead + n <= min(limit, self._ahead_cap):
                return
            self._receipted.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._receipted.wait()

    async def _pace(self, bucket: TokenBucket, n: int) -> None:
        """Wait until `n` more readings fit the backlog's pace. In short steps, each at the pace
        allowed then: a drain budget that rises (the hub measured more) takes effect at once,
        not after a wait computed at the old, low rate."""
        readings = float(n)
        while True:
            bucket.rate = self.backlog_rate()
            bucket.burst = max(bucket.rate / 10, self.settings.max_batch)
            wait = bucket.take(readings, self._clock())
            if wait <= 0:
                return
            readings = 0.0  # taken (into debt): only the debt is waited off now
            await asyncio.sleep(min(wait, 0.25))

    def _send(
        self, client: aiomqtt.Client, tg: asyncio.TaskGroup, batch: Batch, *, live: bool
    ) -> None:
        self._unacked.add(batch.seq)
        self._drained.clear()
        tg.create_task(self._publish(client, batch, live=live), name=f"publish-{batch.seq}")

    async def _publish(self, client: aiomqtt.Client, batch: Batch, *, live: bool) -> None:
        try:
            if self.sparkplug is not None:
                # Framed now, not when stored: the node's seq runs in the order sent.
                topic, payload = self.sparkplug.frame(
                    batch.device, batch.payload, batch.seq, live=live
                )
            else:
                topic, payload = self.contract.batch_topic(batch.device), batch.payload
            # A PUBACK that never comes means a dead link the keepalive has not noticed yet.
            await client.publish(
                topic,
                payload,
                qos=1,
                properties=self._trace_property(batch),
                timeout=self.settings.receipt_timeout,
            )
            recheck_cancel()
            if self.tracing is not None:
                self.tracing.puback(batch.seq)
                if not self.settings.receipts:
                    self.tracing.confirmed([batch.seq], receipt=False)
            self._unacked.discard(batch.seq)
            if not self._unacked:
                self._drained.set()
            now = self._clock()
            self.stats.published_batches += 1
            self.stats.published_readings += batch.n
            (self.stats.live if live else self.stats.backlog).add(batch.n, now)
            if not self.settings.receipts:
                # Someone else's broker: the PUBACK is the only confirmation there will be.
                with contextlib.suppress(DiskFull):  # kept, so sent again: never lost
                    await self.buffer.ack([(batch.seq, batch.digest)])
        finally:
            self._window.release()
            if not live:
                self._backlog_window.release()

    def _trace_property(self, batch: Batch) -> Properties | None:
        """MQTT v5: the batch's `traceparent` user property (docs/tracing.md)."""
        if self.tracing is None or self.settings.protocol != "mqttv5":
            return None
        traceparent = self.tracing.traceparent(batch.seq)
        if traceparent is None:
            return None
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.UserProperty = ("traceparent", traceparent)
        return props

    def _note_error(self, text: str) -> None:
        if text != self.stats.last_error:
            log.warning("mqtt: %s", text)  # once per distinct error, not per retry
        self.stats.last_error = text
