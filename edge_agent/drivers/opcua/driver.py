"""The OPC-UA driver: one device, one session kept alive for as long as the agent runs.

Peers stop delivering data after a PLC restart until someone restarts the gateway. Here a lost
session (socket closed, server restarted, subscription silent for three keep-alive periods)
is thrown away and rebuilt with exponential backoff, jitter and a cap: new session, browse
paths resolved again, subscriptions created again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asyncua import ua

import wire
from edge_agent.drivers.base import Sample, Value
from edge_agent.drivers.health import DeviceHealth, offline_after
from edge_agent.drivers.heartbeat import Heartbeat
from edge_agent.drivers.opcua.alarms import ConditionTracker, EventSink, select_names
from edge_agent.drivers.opcua.points import OpcuaEndpoint, OpcuaEvents, OpcuaMethod, OpcuaPoint
from edge_agent.drivers.opcua.session import OpcuaSession, SessionOptions
from edge_agent.drivers.opcua.values import wire_value
from edge_agent.drivers.opcua.writes import kind_of, variant_for, variant_type
from edge_agent.drivers.polling import SCHEDULE_WARN, SCHEDULE_WINDOW_S
from edge_agent.drivers.writes import check_write, no_such_tag
from edge_agent.errors import DeviceUnavailable, WriteRefused
from millstream_common.backoff import Backoff, device_backoff

__all__ = ["MAX_AGE_S", "QUEUE_SAMPLES", "DriverStats", "OpcuaDriver"]

_log = logging.getLogger(__name__)

# Samples pushed by the server but not yet taken by the agent's buffer, per device. A bound in
# samples (about 5 MB), not in publish responses: 10,000 responses of 1,000 items were 10
# million samples and minutes of latency behind a buffer that could not keep up (issue 28).
QUEUE_SAMPLES = 50_000
# A sample waiting longer than this is dropped (the oldest first) while newer ones wait: an
# overloaded agent delivers fresh values late by at most this, rather than stale ones later.
MAX_AGE_S = 0.5


@dataclass(slots=True)
class DriverStats:
    """Counters for metrics and the agent status topic."""

    sessions: int = 0
    reconnects: int = 0
    failed_attempts: int = 0
    dropped_samples: int = 0
    last_error: str = ""
    last_loss: str = ""  # why the last working session ended


class OpcuaDriver:
    """Implements the driver Protocol (connect, read, subscribe, close) for one OPC-UA server."""

    def __init__(
        self,
        device: str,
        endpoint: OpcuaEndpoint,
        points: Sequence[OpcuaPoint],
        options: SessionOptions,
        *,
        backoff: Backoff | None = None,
        queue_samples: int = QUEUE_SAMPLES,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.time,
        methods: Sequence[OpcuaMethod] = (),
        events: OpcuaEvents | None = None,
    ) -> None:
        self.device = device
        self.events = events
        # Until the runtime hands its sink and the committed condition memory (`report_events_to`),
        # events are only tracked (probe shows the active conditions).
        self.conditions = ConditionTracker(
            select_names(events.fields if events else ()), {}, options.clock_ms
        )
        self._event_sink: EventSink | None = None
        self.methods = {m.name: m for m in methods}
        self.endpoint = endpoint
        self.points = tuple(points)
        self.options = options
        self.stats = DriverStats()
        # Replaced by the runtime's (`report_to`); this one serves `probe` and tests.
        self.health = DeviceHealth(device, self.offline_after_s)
        self._backoff = backoff or device_backoff()
        # (time received, samples) per publish response or poll; bounded by `queue_samples`
        # and `max_age_s` (`_put`, `batches`), dropping the oldest first.
        self._pending: deque[tuple[float, list[Sample]]] = deque()
        self._pending_samples = 0
        self._ready = asyncio.Event()
        self.queue_samples = queue_samples
        self.max_age_s = max_age_s
        self._session: OpcuaSession | None = None
        self._supervisor: asyncio.Task[None] | None = None
        # Polled tags are read every interval anyway; subscribed ones send only changes.
        self._heartbeat = Heartbeat(
            {p.tag: p.max_interval_ms for p in self.points if p.mode == "subscribe"}
        )
        self._clock = clock
        self._closed = False
        # (window start, samples received, samples dropped) for the kept share (_count_kept).
        self._kept_window: tuple[float, int, int] = (clock(), 0, 0)

    async def __aenter__(self) -> OpcuaDriver:
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def offline_after_s(self) -> float:
        """Three missed samples of the fastest tag, at least the request timeout plus 2 s."""
        # sampling_ms 0 means "as fast as the server samples": count it as 100 ms.
        fastest = min((max(p.sampling_ms, 100) for p in self.points), default=1000) / 1000
        return offline_after(fastest, self.options.timeout_s)

    def report_to(self, health: DeviceHealth) -> None:
        """Report session outcomes to the runtime's health of this device: a session that is
        up (its keep-alive answered) counts as a good poll, a lost one or a failed attempt as
        a failed one."""
        self.health = health

    def report_events_to(self, sink: EventSink, state: Mapping[str, wire.Value]) -> None:
        """Hand every event (and the condition memory to commit with it) to `sink`, starting
        from `state`, the memory last committed (edge_agent/drivers/opcua/alarms.py)."""
        self.conditions = ConditionTracker(self.conditions.names, state, self.options.clock_ms)
        self._event_sink = sink

    @property
    def wants_events(self) -> bool:
        """True when the profile asks for events (`events:`)."""
        return self.events is not None

    @property
    def connected(self) -> bool:
        """True while a session is up."""
        return self._session is not None

    async def connect(self) -> None:
        """Open the first session (errors go to the caller), then keep it alive in background."""
        if self._supervisor is not None:
            return
        self._closed = False
        try:
            session = await self._open_session()
        except DeviceUnavailable as exc:
            self.health.poll_failed(self._words(exc.reason))
            raise
        self._supervisor = asyncio.create_task(
            self._supervise(session), name=f"opcua-supervisor-{self.device}"
        )

    async def read(self) -> list[Sample]:
        """Read every point once through the current session (commissioning, `probe`)."""
        session = self._session
        if session is None:
            raise DeviceUnavailable("not connected (reconnecting)", device=self.device)
        return await session.read()

    async def read_tag(self, tag: str) -> Value:
        """One tag's value now, through the current session."""
        session = self._session
        if session is None:
            raise DeviceUnavailable("not connected (reconnecting)", device=self.device)
        (sample,) = await session.read([self._point(tag)])
        return sample.value

    def _point(self, tag: str) -> OpcuaPoint:
        for point in self.points:
            if point.tag == tag:
                return point
        raise no_such_tag(self.device, tag, [p.tag for p in self.points])

    async def write(self, tag: str, value: Value) -> tuple[Value, Value]:
        """Write `value` to a writable tag as its node's data type; (value before, read back).

        `WriteRefused` before anything is sent when the profile does not allow it; `WriteFailed`
        when the server refuses; `DeviceUnavailable` while there is no session.
        """
        point = self._point(tag)
        if not point.writable:
            check_write(tag, value, "number", writable=False)
        session = self._session
        if session is None:
            raise DeviceUnavailable("not connected (reconnecting)", device=self.device)
        vt = variant_type(tag, await session.data_type(point))
        value = check_write(tag, value, kind_of(vt), writable=True, min=point.min, max=point.max)
        variant = variant_for(tag, value, vt)
        (before,) = await session.read([point])
        await session.write(point, variant)
        (after,) = await session.read([point])
        return before.value, after.value

    async def call(self, method: str, args: Sequence[Value]) -> list[Value]:
        """Call a method the profile declares, each argument as the method's input type; its
        outputs as wire values. `WriteRefused` for an undeclared method or unfit arguments."""
        declared = self.methods.get(method)
        if declared is None:
            names = ", ".join(self.methods) or "none"
            raise WriteRefused(
                f"{self.device} declares no method {method!r} in its profile (methods: {names})"
            )
        session = self._session
        if session is None:
            raise DeviceUnavailable("not connected (reconnecting)", device=self.device)
        method_id = ua.NodeId.from_string(declared.method)
        types = await session.input_types(method_id)
        if len(types) != len(args):
            raise WriteRefused(f"{method} takes {len(types)} arguments, not {len(args)}")
        variants = []
        for i, (data_type, arg) in enumerate(zip(types, args, strict=True)):
            where = f"{method} argument {i + 1}"
            vt = variant_type(where, data_type)
            variants.append(
                variant_for(where, check_write(where, arg, kind_of(vt), writable=True), vt)
            )
        outputs = await session.call(
            method, ua.NodeId.from_string(declared.object), method_id, variants
        )
        return [wire_value(o) for o in outputs]

    async def acknowledge(self, event: str, comment: str) -> None:
        """Acknowledge the condition whose occurrence has id `event` (its Acknowledge method,
        naming the newest notification, OPC 10000-9 §5.7.3); the server's new state comes back
        as an event. `WriteRefused` when no condition waits with that id."""
        found = self.conditions.acknowledgeable(event)
        if found is None:
            raise WriteRefused(
                f"{self.device} has no condition with event id {event!r} to acknowledge "
                "(acknowledged or ended already, or the agent has not seen it since it started)"
            )
        session = self._session
        if session is None:
            raise DeviceUnavailable("not connected (reconnecting)", device=self.device)
        condition, event_id = found
        await session.call(
            f"acknowledge {event}",
            ua.NodeId.from_string(condition),
            ua.NodeId(ua.Int32(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)),
            [
                ua.Variant(event_id, ua.VariantType.ByteString),
                ua.Variant(ua.LocalizedText(comment), ua.VariantType.LocalizedText),
            ],
        )

    async def subscribe(self) -> AsyncIterator[Sample]:
        """Samples from subscriptions and poll loops, across reconnects, until `close()`."""
        async for batch in self.batches():
            for sample in batch:
                yield sample

    async def batches(self) -> AsyncIterator[list[Sample]]:
        """Like `subscribe()`, one list per publish response or poll: cheaper for a writer.
        After `close()`, what was received before it, then the end."""
        pending = self._pending
        while True:
            if pending:
                # Let the publish loops run between batches: a consumer with batches waiting
                # would never wait otherwise, and no Publish request would go out while it
                # works, so the server would drop what this queue should count (issue 28).
                await asyncio.sleep(0)
            while not pending:
                if self._closed:
                    return
                self._ready.clear()
                await self._ready.wait()
            received, batch = pending.popleft()
            self._pending_samples -= len(batch)
            if pending and not self._closed and self._clock() - received > self.max_age_s:
                # Behind: newer samples wait, and this one is stale (a stop drains everything).
                self._count_kept(0, len(batch))
                continue
            yield batch

    async def close(self) -> None:
        """Stop reconnecting and close the session."""
        # Set first: should the cancel below get lost, the supervisor still stops at its loop test.
        self._closed = True
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.aclose()
        self._ready.set()  # a consumer waiting in batches() sees the end

    # -- internals ---------------------------------------------------------------------------

    async def _open_session(self) -> OpcuaSession:
        session = OpcuaSession(
            self.device,
            self.endpoint,
            self.points,
            self.options,
            self._deliver,
            report=self._judged,
            events=self.events,
            on_events=self._on_events,
            on_refresh_failed=self._refresh_failed,
        )
        await session.open()
        self._session = session
        self.stats.sessions += 1
        self.health.poll_ok()
        return session

    async def _supervise(self, session: OpcuaSession | None) -> None:
        logged = ""
        while not self._closed:
            if session is not None:
                beat = asyncio.create_task(self._beat(), name=f"opcua-heartbeat-{self.device}")
                try:
                    reason = await session.run_until_lost()
                    self.stats.last_error = self.stats.last_loss = reason
                    self.health.poll_failed(self._words(f"session lost ({reason})"))
                    _log.warning("%s: session lost (%s); reconnecting", self.device, reason)
                finally:
                    beat.cancel()
                    await asyncio.wait([beat])
                    self._heartbeat.forget()
                    self._session = None
                    await session.aclose()
                session = None
            await asyncio.sleep(self._backoff.next_delay())
            try:
                session = await self._open_session()
            except DeviceUnavailable as exc:
                self.stats.failed_attempts += 1
                self.stats.last_error = str(exc)
                self.health.poll_failed(self._words(exc.reason))
                # Log a failure once, not on every attempt: an unplugged PLC must not flood the log.
                if str(exc) != logged:
                    _log.warning("%s", exc)
                    logged = str(exc)
                continue
            self._backoff.reset()
            self.stats.reconnects += 1
            logged = ""
            _log.warning("%s: reconnected", self.device)

    async def _beat(self) -> None:
        # Checked four times per shortest interval: a value is re-sent at most a quarter late.
        if not self._heartbeat.intervals:
            return
        period = min(self._heartbeat.intervals.values()) / 4000
        while True:
            await asyncio.sleep(period)
            due = self._heartbeat.due(int(self._clock() * 1000))
            if due:
                self._put(due)

    def _judged(self, silent: str | None) -> None:
        # The session is up, but the device behind the server may not answer (a gateway).
        if silent is None:
            self.health.poll_ok()
        else:
            self.health.poll_failed(self._words(silent))

    def _words(self, reason: str) -> str:
        return f"{self.endpoint.url}: {reason}"

    def _refresh_failed(self) -> None:
        # Looked up at call time: `report_events_to` may have replaced the tracker.
        self.conditions.refresh_failed()

    def _on_events(self, notifications: list[list[Any]]) -> None:
        events: list[wire.MachineEvent] = []
        changed: dict[str, wire.Value] = {}
        for values in notifications:
            try:
                seen = self.conditions.see(values)
            except ValueError as exc:  # a field the wire contract cannot carry: that event only
                _log.warning(
                    "%s: an event the server sent cannot be published: %s", self.device, exc
                )
                continue
            events.extend(seen.events)
            changed.update(seen.changed)
        if self._event_sink is not None and (events or changed):
            self._event_sink(events, changed)

    def _deliver(self, samples: list[Sample]) -> None:
        self._heartbeat.seen(samples)
        self._put(samples)

    def _put(self, samples: list[Sample]) -> None:
        pending = self._pending
        pending.append((self._clock(), samples))
        self._pending_samples += len(samples)
        dropped = 0
        # The consumer is behind: newest data is worth more than a backlog of stale values.
        while self._pending_samples > self.queue_samples and len(pending) > 1:
            _received, old = pending.popleft()
            self._pending_samples -= len(old)
            dropped += len(old)
        self._ready.set()
        self._count_kept(len(samples), dropped)

    def _count_kept(self, received: int, dropped: int) -> None:
        """Judge, per window, the share of what the server sent that the agent kept: a
        subscription pushes, so an agent that cannot keep up drops (the oldest) instead of
        polling late. Reported where a polled device reports its schedule (status, metrics,
        a warning when it starts and a line when it ends), never silently (issue 28)."""
        self.stats.dropped_samples += dropped
        now = self._clock()
        start, got, lost = self._kept_window
        got, lost = got + received, lost + dropped
        if now - start < SCHEDULE_WINDOW_S:
            self._kept_window = (start, got, lost)
            return
        self._kept_window = (now, 0, 0)
        share = 1.0 - lost / max(1, got)
        before, self.health.schedule = self.health.schedule, round(share, 3)
        if share < SCHEDULE_WARN and (before is None or before >= SCHEDULE_WARN):
            _log.warning(
                "device %s: the agent keeps only %.0f %% of what the OPC-UA server sends "
                "(%d of %d samples dropped, the oldest first): more is subscribed than the agent "
                "keeps up with; sample less often, or fewer tags",
                self.device, 100 * share, lost, got,
            )  # fmt: skip
        elif share >= SCHEDULE_WARN and before is not None and before < SCHEDULE_WARN:
            _log.info("device %s: keeping up with its subscription again", self.device)
