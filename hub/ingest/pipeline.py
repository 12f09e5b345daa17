"""Ingest pipeline: classify on arrival, commit in batches of up to `flush_ms`, ack after commit.

Telemetry is announced live (`on_validated`, in receive order) as soon as it is validated, not
after its commit: the live view shows what the machines do now, and neither the flush window nor
a slow or unavailable database holds it back. Receipts, bridges and history follow the commit.

Up to two transactions are in flight at once (so PostgreSQL can use a second core), but PUBACKs
go out strictly in receive order, each only after its own transaction is durable.

The window between "received" and "acknowledged" is the hub's only in-memory state. It is
bounded by the broker (MQTT v5 Receive Maximum: it sends no more unacknowledged messages than
that), so when storage is down the hub simply stops acknowledging, the window fills, the broker
holds the rest, and nothing acknowledged is ever lost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import wire
from hub.errors import StorageUnavailable
from hub.ingest.classify import Classified, Part, Several, parts
from hub.ingest.deadletters import DeadLetterBudget
from hub.ingest.drain import DrainEstimator
from hub.ingest.message import Incoming
from hub.ingest.tracing import IngestTracer, Spans
from hub.metrics import HubMetrics
from hub.storage import (
    AgentStatusUpdate,
    CommandResultUpdate,
    DeadLetter,
    EventBatch,
    MachineMetaUpdate,
    MachineStatusUpdate,
    SparkplugBirth,
    Storage,
    TelemetryBatch,
    WriteBatch,
    WriteResult,
)
from millstream_common.backoff import Backoff

__all__ = ["INLINE_MAX_BYTES", "Classified", "IngestPipeline"]

log = logging.getLogger(__name__)

# Payloads up to this size are validated on the event loop even when there are worker processes:
# validating one takes at most ~0.1 ms, handing it to a worker and back ~0.5 ms of this
# process's CPU and ~1 ms of latency (pickling, a pipe, two thread hops). A device's message
# of ten readings is ~0.7 KiB; an agent batch of 1,000 readings ~66 KiB goes to a worker.
INLINE_MAX_BYTES = 4096

_KIND = {
    TelemetryBatch: "telemetry",
    EventBatch: "events",
    DeadLetter: "dead_letter",
    MachineStatusUpdate: "machine_status",
    AgentStatusUpdate: "agent_status",
    MachineMetaUpdate: "machine_meta",
    CommandResultUpdate: "command_result",
    SparkplugBirth: "sparkplug_birth",
}


@dataclass(slots=True)
class _Item:
    msg: Incoming
    result: Classified | None  # None: acknowledge in order, store nothing
    arrived: float  # loop.time(), for the flush window
    parsed: bool = True  # False while a parse worker still has it
    parsing: asyncio.Future[Classified | None] | None = None
    # Tracing only (hub/ingest/tracing.py): when it was validated, announced live, its spans.
    validated_ns: int = 0
    live: tuple[int, int] | None = None
    spans: Spans | None = None


def _readings(result: Classified | None) -> int:
    return sum(len(p.readings) for p in parts(result) if isinstance(p, TelemetryBatch))


def _build(items: Sequence[_Item]) -> WriteBatch:
    dead, machines, agents, metas, results, births = [], [], [], [], [], []
    telemetry: list[TelemetryBatch] = []
    events: list[EventBatch] = []
    for r in (p for item in items for p in parts(item.result)):
        if isinstance(r, TelemetryBatch):
            telemetry.append(r)
        elif isinstance(r, EventBatch):
            events.append(r)
        elif isinstance(r, DeadLetter):
            dead.append(r)
        elif isinstance(r, MachineStatusUpdate):
            machines.append(r)
        elif isinstance(r, MachineMetaUpdate):
            metas.append(r)
        elif isinstance(r, CommandResultUpdate):
            results.append(r)
        elif isinstance(r, SparkplugBirth):
            births.append(r)
        else:
            agents.append(r)
    # What a batch sets aside of itself is committed with it.
    dead += [t.refused for t in telemetry if t.refused is not None]
    dead += [e.refused for e in events if e.refused is not None]
    return WriteBatch(
        telemetry=telemetry,
        dead_letters=dead,
        machines=machines,
        agents=agents,
        metas=metas,
        results=results,
        births=births,
        events=events,
    )


def _rejected(item: _Item, exc: Exception) -> _Item:
    msg = item.msg
    src = seq = None
    digest = ""
    first = next(
        (p for p in parts(item.result) if isinstance(p, TelemetryBatch | EventBatch | DeadLetter)),
        None,
    )
    if first is not None and (not isinstance(first, TelemetryBatch) or first.receipt):
        src, seq, digest = first.src, first.seq, first.digest
    dead = DeadLetter(
        msg.topic,
        msg.payload,
        "storage_rejected",
        str(exc)[:1000],
        msg.received_at,
        src,
        seq,
        digest,
    )
    return _Item(msg, dead, item.arrived)


def _trace_fields(spans: Spans) -> dict[str, str]:
    return {"trace_id": f"{spans.ingest.trace_id:032x}", "span_id": f"{spans.ingest.span_id:016x}"}


class IngestPipeline:
    """Batches classified messages into storage transactions; see module docstring."""

    def __init__(
        self,
        storage: Storage,
        *,
        classify: Callable[[Incoming], Classified | None],
        ack: Callable[[Sequence[Incoming]], object],
        on_committed: Callable[[Sequence[TelemetryBatch]], None],
        metrics: HubMetrics,
        on_events: Callable[[Sequence[EventBatch]], None] | None = None,
        on_dead_letters: Callable[[Sequence[DeadLetter]], None] | None = None,
        on_validated: Callable[[Sequence[TelemetryBatch]], None] | None = None,
        flush_ms: int = 50,
        max_messages: int = 1000,
        max_readings: int = 50_000,
        max_concurrent_commits: int = 2,
        parser: Executor | None = None,
        dead_letter_budget: DeadLetterBudget | None = None,
        authorize: Callable[[Incoming, TelemetryBatch | EventBatch], DeadLetter | None]
        | None = None,
        tracing: IngestTracer | None = None,
        drain: DrainEstimator | None = None,
    ) -> None:
        """`authorize`: the dead letter a batch becomes when its publisher may not send it
        (hub/ingest/owners.py), judged on the event loop as soon as a batch is validated, so a
        refused one is neither shown live nor stored."""
        self._authorize = authorize
        self._tracing = tracing
        # Commit timings and agents' backlogs, for the drain budget (hub/ingest/drain.py).
        self._drain = drain
        self._storage = storage
        self._dead_budget = dead_letter_budget or DeadLetterBudget()
        # Validation is the hub's main CPU cost; worker processes let it use more than one core.
        self._parser = parser
        self._classify = classify
        self._ack = ack
        self._on_committed = on_committed
        self._on_events = on_events
        self._on_dead_letters = on_dead_letters
        self._on_validated = on_validated
        # Received and not yet announced live: validation finishes in any order, announcing
        # goes in receive order so a machine's readings never arrive out of order.
        self._unannounced: deque[_Item] = deque()
        self._metrics = metrics
        self._flush_s = flush_ms / 1000
        self._max_messages = max_messages
        self._max_readings = max_readings
        self._items: deque[_Item] = deque()
        self._readings = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._storage_ok = True
        self._slots = asyncio.Semaphore(max_concurrent_commits)
        self._inflight: deque[asyncio.Task[list[_Item]]] = deque()
        self._inflight_count = 0
        self._landed = asyncio.Event()
        self._taking_done = False

    @property
    def backlog(self) -> int:
        """Messages received and not yet acknowledged."""
        return len(self._items) + self._inflight_count

    @property
    def storage_ok(self) -> bool:
        """False while commits are failing and being retried."""
        return self._storage_ok

    def _classify_here(self, msg: Incoming) -> Classified | None:
        try:
            return self._classify(msg)
        except Exception as exc:  # a classifier bug must not lose or block the message
            log.exception("classifier failed on %s", msg.topic)
            return DeadLetter(msg.topic, msg.payload, "internal", str(exc), msg.received_at)

    def submit_classified(self, msg: Incoming, result: Classified | None) -> None:
        """Accept a message classified by its own session (Sparkplug: stateful, so on the
        event loop, in arrival order); committed and acknowledged in order with the rest."""
        self._accept(_Item(msg, result, asyncio.get_running_loop().time()))

    def submit(self, msg: Incoming) -> None:
        """Accept one message from the broker (event-loop thread); never raises on bad input."""
        loop = asyncio.get_running_loop()
        size = len(msg.payload)
        # Over the contract's limit is refused on its size alone, here: copying megabytes to a
        # worker only to hear that would hold up every other publisher's messages.
        if self._parser is None or size <= INLINE_MAX_BYTES or size > wire.MAX_PAYLOAD_BYTES:
            self._accept(_Item(msg, self._classify_here(msg), loop.time()))
            return
        item = _Item(msg, None, loop.time(), parsed=False)
        try:
            item.parsing = loop.run_in_executor(self._parser, self._classify, msg)
        except RuntimeError:  # pool shut down or broken: validate here instead
            item.result, item.parsed = self._classify_here(msg), True
            self._accept(item)
            return
        item.parsing.add_done_callback(lambda fut: self._parsed(item, fut))
        self._accept(item)

    def _parsed(self, item: _Item, fut: asyncio.Future[Classified | None]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            # A dead worker must not turn valid data into a dead letter: validate here.
            item.result = self._classify_here(item.msg)
        else:
            item.result = fut.result()
        item.parsed = True
        if self._tracing is not None:
            item.validated_ns = time.time_ns()
        self._judge(item)
        self._readings += _readings(item.result)
        self._announce()
        self._wake.set()

    def _announce(self) -> None:
        validated = []
        announced = []
        while self._unannounced and self._unannounced[0].parsed:
            item = self._unannounced.popleft()
            live = [p for p in parts(item.result) if isinstance(p, TelemetryBatch) and p.live]
            if live:
                validated += live
                announced.append(item)
        if validated and self._on_validated is not None:
            start = time.time_ns() if self._tracing is not None else 0
            try:
                self._on_validated(validated)
            except Exception:  # the live view failing must not stop or lose ingest
                log.exception("live announcement failed")
            if self._tracing is not None:
                end = time.time_ns()
                for item in announced:
                    item.live = (start, end)

    def _judge(self, item: _Item) -> None:
        if self._authorize is not None and isinstance(item.result, TelemetryBatch | EventBatch):
            refused = self._authorize(item.msg, item.result)
            if refused is not None:
                item.result = refused

    def _accept(self, item: _Item) -> None:
        if item.parsed:
            if self._tracing is not None:
                item.validated_ns = time.time_ns()
            self._judge(item)
        self._items.append(item)
        self._unannounced.append(item)
        self._announce()
        if item.parsed:
            self._readings += _readings(item.result)
        self._metrics.backlog.set(self.backlog)
        self._wake.set()

    def stop(self) -> None:
        """Commit what is queued, then make `run` return."""
        self._stopping = True
        self._wake.set()

    def _full(self) -> bool:
        return len(self._items) >= self._max_messages or self._readings >= self._max_readings

    async def run(self) -> None:
        """Commit batches until `stop()` and the queue is empty."""
        async with asyncio.TaskGroup() as tg:
            acker = tg.create_task(self._ack_in_order(), name="ingest-ack")
            await self._take_batches(tg)
            self._taking_done = True
            self._landed.set()
            await acker

    async def _take_batches(self, tg: asyncio.TaskGroup) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._items:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            deadline = self._items[0].arrived + self._flush_s
            while not self._full() and not self._stopping and loop.time() < deadline:
                self._wake.clear()
                try:
                    async with asyncio.timeout_at(deadline):
                        await self._wake.wait()
                except TimeoutError:
                    break
            # Everything received by the deadline belongs in this batch, up to a full one: wait
            # for its validation (workers finish in any order; commits and PUBACKs stay in
            # receive order) — and no further: waiting for the whole window's validation
            # would leave the commit slots idle while the workers catch up, then both busy
            # while the workers idle.
            while pending := self._validating_head():
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            # While both commit slots are busy, messages keep arriving and the next batch grows.
            await self._slots.acquire()
            items = self._take()
            if not items:
                self._slots.release()
                continue
            self._inflight.append(tg.create_task(self._commit(items), name="ingest-commit"))
            self._landed.set()

    def _validating_head(self) -> list[asyncio.Future[Classified | None]]:
        """Validations still running among the messages the next commit takes."""
        pending = []
        readings = 0
        for item in itertools.islice(self._items, self._max_messages):
            if item.parsed:
                readings += _readings(item.result)
                if readings >= self._max_readings:
                    break
            elif item.parsing is not None:
                pending.append(item.parsing)
        return pending

    def _take(self) -> list[_Item]:
        taken: list[_Item] = []
        readings = 0
        while self._items:
            item = self._items[0]
            if not item.parsed:
                break
            n = _readings(item.result)
            if taken and (len(taken) >= self._max_messages or readings + n > self._max_readings):
                break
            taken.append(self._trimmed(self._items.popleft()))
            readings += n
        self._readings -= readings
        self._inflight_count += len(taken)
        return taken

    def _trimmed(self, item: _Item) -> _Item:
        """The item with its dead letter's payload cut to what the budget keeps."""
        if isinstance(item.result, Several):
            item.result = Several(tuple(self._trim(p) for p in item.result.parts))
        elif item.result is not None:
            item.result = self._trim(item.result)
        return item

    def _trim(self, result: Part) -> Part:
        now = time.monotonic()
        if isinstance(result, DeadLetter):
            return self._dead_budget.trim(result, now)
        if isinstance(result, TelemetryBatch | EventBatch) and result.refused is not None:
            return dataclasses.replace(result, refused=self._dead_budget.trim(result.refused, now))
        return result

    async def _ack_in_order(self) -> None:
        # Commits may overlap (two transactions in flight), but PUBACKs go out strictly in
        # receive order, each only once its own transaction is durable.
        while True:
            if not self._inflight:
                if self._taking_done:
                    return
                self._landed.clear()
                await self._landed.wait()
                continue
            committed = await self._inflight[0]
            self._inflight.popleft()
            self._slots.release()
            self._ack([i.msg for i in committed])
            self._inflight_count -= len(committed)
            self._metrics.backlog.set(self.backlog)
            done = [p for i in committed for p in parts(i.result)]
            telemetry = [p for p in done if isinstance(p, TelemetryBatch)]
            events = [p for p in done if isinstance(p, EventBatch)]
            dead = [p for p in done if isinstance(p, DeadLetter)]
            dead += [t.refused for t in telemetry if t.refused is not None]
            dead += [e.refused for e in events if e.refused is not None]
            for part in done:
                self._metrics.messages.labels(_KIND[type(part)]).inc()
            for letter in dead:
                self._metrics.dead_letters.labels(letter.reason).inc()
            if telemetry:
                self._on_committed(telemetry)
            if events and self._on_events is not None:
                self._on_events(events)
            if dead and self._on_dead_letters is not None:
                self._on_dead_letters(dead)
            if self._tracing is not None:
                self._traced(committed)
            if self._drain is not None:
                now = time.monotonic()
                for part in done:
                    if isinstance(part, AgentStatusUpdate):
                        self._drain.agent(
                            part.agent_id, part.buffer_depth or 0, now, part.live_rate
                        )

    def _traced(self, committed: list[_Item]) -> None:
        """Emit the spans of acknowledged messages (hub/ingest/tracing.py)."""
        assert self._tracing is not None
        now = time.time_ns()
        for item in committed:
            result = item.result
            if isinstance(result, TelemetryBatch) and item.spans is not None:
                item.spans.validated_ns, item.spans.live = item.validated_ns, item.live
                self._tracing.acknowledged(item.msg, result, item.spans, now)
            elif isinstance(result, DeadLetter):
                self._tracing.dead_lettered(item.msg, result, now)

    def _trace_ids(self, items: list[_Item]) -> None:
        """Give each telemetry batch its spans' ids before it is written: its outbox row
        carries one of them to the relay."""
        assert self._tracing is not None
        for item in items:
            if isinstance(item.result, TelemetryBatch) and item.spans is None:
                item.spans = self._tracing.start(item.result)
                item.result = dataclasses.replace(item.result, trace=item.spans.outbox.traceparent)

    async def _commit(self, items: list[_Item]) -> list[_Item]:
        """Write items in one transaction, retrying while storage is down; returns what was
        committed (rejected messages come back as dead letters)."""
        backoff = Backoff(initial_s=0.05, cap_s=5.0)
        outage_logged = False
        if self._tracing is not None:
            self._trace_ids(items)
        while True:
            try:
                started = time.perf_counter()
                started_ns = time.time_ns()
                started_mono = time.monotonic()
                result = await self._storage.write(_build(items))
            except StorageUnavailable as exc:
                self._metrics.storage_errors.inc()
                self._metrics.storage_up.set(0)
                self._storage_ok = False
                if not outage_logged:  # once per outage, not once per retry
                    log.warning("storage unavailable, holding %d messages: %s", len(items), exc)
                    outage_logged = True
                await asyncio.sleep(backoff.next_delay())
                continue
            except Exception as exc:  # StorageRejected, or a bug: isolate the bad message
                return await self._split(items, exc)
            exemplar = None
            if self._tracing is not None:
                done = (started_ns, time.time_ns())
                for item in items:
                    if item.spans is not None:
                        item.spans.commit = done
                        exemplar = exemplar or self._tracing.exemplar(item.spans)
            self._record(result, len(items), time.perf_counter() - started, exemplar)
            if self._drain is not None:
                readings = sum(_readings(i.result) for i in items)
                self._drain.committed(started_mono, time.monotonic(), readings)
            if outage_logged:
                log.warning("storage is back; committed %d held messages", len(items))
            return items

    async def _split(self, items: list[_Item], exc: Exception) -> list[_Item]:
        if len(items) == 1:
            if isinstance(items[0].result, DeadLetter) and items[0].result.reason == "internal":
                raise exc  # even the dead letter cannot be stored: let the hub fail loudly
            spans = items[0].spans
            log.warning(
                "storage refused a message on %s: %s",
                items[0].msg.topic,
                exc,
                # With tracing on, the line names the batch's trace (docs/tracing.md).
                extra={"fields": _trace_fields(spans)} if spans is not None else None,
            )
            fallback = _rejected(items[0], exc)
            if isinstance(items[0].result, DeadLetter):
                fallback = _Item(
                    items[0].msg,
                    DeadLetter(
                        items[0].msg.topic,
                        b"",
                        "internal",
                        f"dead letter refused by storage: {exc}"[:1000],
                        items[0].msg.received_at,
                    ),
                    items[0].arrived,
                )
            return await self._commit([fallback])
        committed: list[_Item] = []
        for item in items:
            committed.extend(await self._commit([item]))
        return committed

    def _record(
        self, result: WriteResult, messages: int, seconds: float, exemplar: dict[str, str] | None
    ) -> None:
        self._storage_ok = True
        self._metrics.storage_up.set(1)
        self._metrics.commit_seconds.observe(seconds, exemplar)
        self._metrics.batch_messages.observe(messages)
        self._metrics.readings.labels("inserted").inc(result.inserted)
        self._metrics.readings.labels("duplicate").inc(result.duplicates)
