"""The running hub: storage, MQTT session, ingest pipeline, receipts, maintenance and HTTP.

Everything long-running lives in one TaskGroup with named tasks. Stopping (SIGTERM) commits
and acknowledges what is already received, then disconnects; whatever is still unacknowledged
stays in the broker session and is redelivered to the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import uvicorn

import wire
from hub.alerts.evaluator import AlertEvaluator
from hub.alerts.feed import write_feed, write_feed_sqlite
from hub.alerts.notify import build_senders
from hub.api import create_app
from hub.api.v1.wiring import ApiWiring
from hub.auth import jwt_secret
from hub.bridge import Bridges
from hub.config import HubConfig
from hub.errors import MillstreamHubError, StorageUnavailable
from hub.ingest.classify import classify
from hub.ingest.drain import DrainEstimator, publish_budget
from hub.ingest.message import Incoming
from hub.ingest.mqtt import MqttSession
from hub.ingest.owners import Owners, load_owners
from hub.ingest.pipeline import IngestPipeline
from hub.ingest.sparkplug_host import SparkplugHost
from hub.ingest.tracing import IngestTracer
from hub.ingest.workers import worker_pool
from hub.live import LiveWebSocketProtocol
from hub.metrics import HubMetrics
from hub.receipts.publisher import publish_receipts
from hub.receipts.tracker import ReceiptTracker
from hub.sql import open_database
from hub.sql.singleton import PG_ERRORS
from hub.storage import (
    DeadLetter,
    EventBatch,
    Storage,
    TelemetryBatch,
    TransactionHook,
    open_storage,
)
from millstream_common.backoff import Backoff
from millstream_common.tracing import open_tracer

__all__ = ["Hub", "default_client_id"]

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 3600.0
DRAIN_TIMEOUT_S = 10.0
OWNERS_REFRESH_S = 5.0
# A database away or not migrated yet: keep the owners last read and try again.
_OWNER_READ_ERRORS: tuple[type[BaseException], ...] = (
    StorageUnavailable,
    sqlite3.Error,
    *PG_ERRORS,
)


def default_client_id() -> str:
    """Stable per host, so a restarted hub resumes its own broker session."""
    return f"millstream-hub-{socket.gethostname()}"[:64]


def now_ms() -> int:
    """Wall clock in epoch milliseconds (the shell's only clock read)."""
    return time.time_ns() // 1_000_000


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The hub owns SIGTERM/SIGINT: it drains ingest first, then stops HTTP.
        yield


class Hub:
    """One hub instance; `await hub.run(stop)` serves until `stop` is set."""

    def __init__(
        self,
        config: HubConfig,
        *,
        hooks: Sequence[TransactionHook] = (),
        serve_http: bool = True,
        parse_workers: int | None = None,
    ) -> None:
        self.config = config
        # Processes that validate payloads (the hub's main CPU cost), so ingest is not bound to
        # the one core the event loop runs on. None: one less than the CPUs, at most 4; 0: inline.
        cpus = os.cpu_count() or 1
        self._parse_workers = min(4, cpus - 1) if parse_workers is None else parse_workers
        self.metrics = HubMetrics()
        # Off by default (docs/tracing.md); spans of each batch from ingest to Kafka.
        self.tracer = open_tracer("millstream-hub", config.tracing)
        # Kafka outbox + relay and Redis live values, each on only when configured.
        self.bridges = Bridges(config, self.metrics.registry, self.tracer)
        # REST API, auth and the WebSocket live stream (docs/api.md).
        self.api = ApiWiring(config, self.metrics.registry, self.bridges.live)
        self._hooks = hooks
        self._serve_http = serve_http
        self._storage: Storage | None = None
        self._session: MqttSession | None = None
        self._started = asyncio.Event()
        self._parser: ProcessPoolExecutor | None = None
        self.evaluator: AlertEvaluator | None = None
        self.sparkplug: SparkplugHost | None = None  # with a `sparkplug:` section
        # Which publisher owns which machine, from the broker identities the hub made.
        self._owners = Owners()
        # Alert rules are evaluated over the feed the ingest transaction writes (docs/alerts.md).
        # With an `alerts:` section, even one without rules of its own: admins may add rules
        # through the API. On SQLite (the demo) by this one instance.
        self._evaluates = config.alerts is not None
        self._sqlite = urlsplit(config.storage).scheme == "sqlite"

    # HealthSource for the API
    @property
    def broker_connected(self) -> bool:
        """True while the broker connection is up."""
        return self._session is not None and self._session.connected

    def bridge_health(self) -> dict[str, Any]:
        """Kafka relay / Redis / alert / Sparkplug detail for `/health/ready` (never makes the
        hub unready)."""
        out = self.bridges.health()
        if self.evaluator is not None:
            out["alerts"] = self.evaluator.health()
        if self.sparkplug is not None:
            out["sparkplug"] = self.sparkplug.health()
        return out

    def _ack(self, session: MqttSession, messages: Sequence[Incoming]) -> None:
        # Each broker session acknowledges only the messages it delivered.
        session.ack(messages)
        if self.sparkplug is not None:
            self.sparkplug.ack(messages)

    async def ping_storage(self) -> None:
        """Raise `StorageUnavailable` unless storage answers."""
        if self._storage is None:
            raise StorageUnavailable("storage not open yet")
        await self._storage.ping()

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Wait until storage is checked and the broker acknowledged our subscriptions."""
        async with asyncio.timeout(timeout_s):
            await self._started.wait()
            if self._session is None:
                raise MillstreamHubError("hub stopped before it was ready")
            await self._session.wait_subscribed(timeout_s)

    async def _wait_for_schema(self, storage: Storage, stop: asyncio.Event) -> bool:
        backoff = Backoff(initial_s=0.5, cap_s=10.0)
        while not stop.is_set():
            try:
                await storage.check_schema()  # SchemaError is fatal and propagates
            except StorageUnavailable as exc:
                log.warning("waiting for storage: %s", exc)
            else:
                return True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff.next_delay()):
                    await stop.wait()
        return False

    def _commit_callbacks(
        self, tracker: ReceiptTracker
    ) -> tuple[
        Callable[[Sequence[TelemetryBatch]], None],
        Callable[[Sequence[EventBatch]], None],
        Callable[[Sequence[DeadLetter]], None],
    ]:
        """What runs after each commit: receipts and bridges (the live fan-out runs earlier,
        on validation)."""

        def committed(batches: Sequence[TelemetryBatch]) -> None:
            for b in batches:
                if b.receipt:
                    tracker.add(b.src, b.seq, b.digest)
            self.bridges.on_committed([b for b in batches if b.live])

        def events_committed(batches: Sequence[EventBatch]) -> None:
            for b in batches:
                tracker.add(b.src, b.seq, b.digest)

        def dead_lettered(letters: Sequence[DeadLetter]) -> None:
            # Set aside is committed too: without a receipt the agent would resend a batch the
            # hub will always refuse (e.g. timestamps older than 30 days) forever.
            for d in letters:
                if d.src is not None and d.seq is not None:
                    tracker.add(d.src, d.seq, d.digest)

        return committed, events_committed, dead_lettered

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; raises `MillstreamHubError` on fatal problems."""
        cfg = self.config
        if self._serve_http:
            jwt_secret(cfg)  # refuse a missing or weak signing secret before anything starts
        # The alert feed is written in every ingest transaction, PostgreSQL's or SQLite's.
        feed = self._evaluates
        storage = open_storage(
            cfg.storage,
            retention_days=cfg.retention_days,
            dead_letter_retention_days=cfg.dead_letter_retention_days,
            hooks=[
                *self._hooks,
                *self.bridges.hooks,
                *([write_feed] if feed and not self._sqlite else []),
            ],
            sqlite_hooks=[write_feed_sqlite] if feed and self._sqlite else [],
        )
        async with storage:
            self._storage = storage
            if not await self._wait_for_schema(storage, stop):
                return
            tracker = ReceiptTracker(interval_ms=200)

            committed, events_committed, dead_lettered = self._commit_callbacks(tracker)
            tracing = None if self.tracer is None else IngestTracer(self.tracer)
            drain = DrainEstimator()
            instance = cfg.mqtt.client_id or default_client_id()

            parser = await self._start_parser()
            try:
                session: MqttSession
                pipeline = IngestPipeline(
                    storage,
                    classify=classify,
                    ack=lambda messages: self._ack(session, messages),
                    on_committed=committed,
                    on_events=events_committed,
                    on_dead_letters=dead_lettered,
                    on_validated=self.api.on_validated,
                    metrics=self.metrics,
                    flush_ms=cfg.flush_ms,
                    parser=parser,
                    # Late-bound: _watch_owners replaces the map as identities change.
                    authorize=lambda msg, batch: self._owners.judge(msg, batch),  # noqa: PLW0108
                    tracing=tracing,
                    drain=drain,
                )
                session = MqttSession(
                    cfg.mqtt,
                    instance,
                    pipeline.submit,
                    # Gone without a goodbye: its drain budget must not linger (docs/hub.md).
                    will=(wire.drain_topic(instance), b""),
                )
                self._session = session
                if cfg.sparkplug is not None:
                    self.sparkplug = SparkplugHost(cfg, pipeline.submit_classified)
                self._started.set()
                async with (
                    session,
                    contextlib.AsyncExitStack() as api_stack,
                    asyncio.TaskGroup() as tg,
                ):
                    ingest = tg.create_task(pipeline.run(), name="ingest")
                    others = [
                        tg.create_task(
                            publish_receipts(
                                tracker,
                                session,
                                self.metrics,
                                now_ms,
                                None if tracing is None else tracing.receipts_sent,
                            ),
                            name="receipts",
                        ),
                        tg.create_task(self._maintain(storage), name="maintenance"),
                        tg.create_task(
                            self._drain_budget(drain, session, instance, pipeline),
                            name="drain-budget",
                        ),
                        tg.create_task(self._watch_owners(), name="owners"),
                        tg.create_task(self._watch_broker(session), name="broker-gauge"),
                        tg.create_task(self.bridges.run(stop), name="bridges"),
                        tg.create_task(self.api.run(stop), name="live"),
                    ]
                    server: _Server | None = None
                    host_done = asyncio.Event()
                    if self.sparkplug is not None:
                        others.append(
                            tg.create_task(self.sparkplug.run(host_done), name="sparkplug")
                        )
                    if self._evaluates:
                        others.append(self._start_alerts(tg, session, stop))
                    if self._serve_http:
                        server = await self._http_server(api_stack, session)
                        others.append(tg.create_task(self._serve(server), name="http"))
                    await stop.wait()
                    await self._wind_down(session, pipeline, ingest, host_done, others)
                    if server is not None:
                        server.should_exit = True
                    for task in others:
                        if task.get_name() != "http":
                            task.cancel()
            finally:
                self._session = None
                if parser is not None:
                    # Off the loop: shutdown joins the worker processes.
                    await asyncio.to_thread(parser.shutdown, True, cancel_futures=True)
                    self._parser = None
                if self.tracer is not None:  # what it holds is exported before the end
                    await asyncio.to_thread(self.tracer.close)
        self._storage = None

    async def _drain_budget(
        self,
        drain: DrainEstimator,
        session: MqttSession,
        instance: str,
        pipeline: IngestPipeline,
    ) -> None:
        """Publish this instance's drain budget until stopped, then withdraw it."""
        # The window is full when the broker may send no more: it holds the rest back.
        full_at = max(1, int(self.config.mqtt.receive_maximum * 0.9))
        try:
            await publish_budget(
                drain, session, instance, lambda: pipeline.backlog >= full_at, now_ms
            )
        finally:
            session.publish(wire.drain_topic(instance), b"", 1, retain=True)

    async def _wind_down(
        self,
        session: MqttSession,
        pipeline: IngestPipeline,
        ingest: asyncio.Task[None],
        host_done: asyncio.Event,
        others: Sequence[asyncio.Task[Any]],
    ) -> None:
        """Stop taking messages and commit what was received; then the Sparkplug host, which
        outlives the drain (what it delivered is acknowledged) and says it is going."""
        if self.config.mqtt.retire_on_stop:
            log.info("retiring: leaving the share group, ending the broker session")
            await session.retire()
        log.info("stopping: committing %d received messages", pipeline.backlog)
        pipeline.stop()
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await ingest
        except TimeoutError:
            log.warning("drain timed out; unacknowledged messages stay with the broker")
        host_done.set()
        for task in others:
            if task.get_name() == "sparkplug":
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(10):
                        await asyncio.shield(task)

    async def _http_server(
        self, api_stack: contextlib.AsyncExitStack, session: MqttSession
    ) -> _Server:
        cfg = self.config
        app = create_app(self, self.metrics)
        await api_stack.enter_async_context(self.api.mounted(app, publish=session.publish))
        return _Server(
            uvicorn.Config(
                app,
                host=cfg.http.host,
                port=cfg.http.port,
                log_config=None,
                lifespan="off",
                access_log=False,
                # uvicorn believes X-Forwarded-For from 127.0.0.1 by default,
                # which let any local client dodge the per-address login limit.
                proxy_headers=bool(cfg.http.trusted_proxies),
                forwarded_allow_ips=list(cfg.http.trusted_proxies),
                # Compressing each live message for each client cost a
                # fifth of the hub's CPU at 1,000 clients; the messages are
                # small and mostly go over a LAN (bench/ws_fanout.py).
                ws_per_message_deflate=False,
                # Writes each live update's prepared frame straight to the
                # sockets of clients that keep up (hub/live/server.py).
                ws=LiveWebSocketProtocol,
            )
        )

    def _start_alerts(
        self, tg: asyncio.TaskGroup, session: MqttSession, stop: asyncio.Event
    ) -> asyncio.Task[None]:
        cfg = self.config
        assert cfg.alerts is not None
        senders = build_senders(cfg.alerts, cfg.smtp, session.publish)
        # PostgreSQL announces recorded changes to every instance (NOTIFY, hub/alerts/live.py);
        # SQLite's one instance hands them to its live clients itself.
        on_changes = self.api.fanout.publish_alert if self._sqlite else None
        self.evaluator = AlertEvaluator(cfg.alerts, cfg.storage, senders, on_changes=on_changes)
        return tg.create_task(self.evaluator.run(stop), name="alert-evaluator")

    async def _start_parser(self) -> ProcessPoolExecutor | None:
        if self._parse_workers <= 0:
            return None
        pool = worker_pool(self._parse_workers)
        loop = asyncio.get_running_loop()
        warm = Incoming("ms/v1/s/l/m/status", b"", 0, 0, 0)
        # Start the workers and import wire there now, not on the first real message.
        await asyncio.gather(
            *(loop.run_in_executor(pool, classify, warm) for _ in range(self._parse_workers))
        )
        self._parser = pool
        return pool

    async def _serve(self, server: _Server) -> None:
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn exits the process on bind failure; we don't
            raise MillstreamHubError(
                f"HTTP server could not listen on {self.config.http.host}:{self.config.http.port}"
            ) from exc

    async def _maintain(self, storage: Storage) -> None:
        while True:
            try:
                await storage.maintain(now_ms())
            except StorageUnavailable as exc:
                log.warning("maintenance skipped: %s", exc)
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)

    async def _watch_owners(self) -> None:
        # Identities change from the CLI or another instance: read them again every few
        # seconds (a handful of rows).
        async with open_database(self.config.storage, max_connections=1) as db:
            while True:
                try:
                    self._owners = await load_owners(db)
                except _OWNER_READ_ERRORS as exc:
                    log.debug("broker identities not read: %s", exc)
                await asyncio.sleep(OWNERS_REFRESH_S)

    async def _watch_broker(self, session: MqttSession) -> None:
        while True:
            self.metrics.mqtt_connected.set(1 if session.connected else 0)
            await asyncio.sleep(1.0)
