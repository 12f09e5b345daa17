"""The evaluator: one hub instance at a time runs the rules over the alert feed, in order.

Why one, and why the feed: the shared MQTT subscription splits a machine's batches across hub
instances, so no instance sees a series whole, and an instance that dies takes what it had in
memory with it. The feed (`hub.alerts.feed`) holds every committed reading (and machine event)
once, whichever instance stored it, in an order no later commit can precede; the evaluator that
holds the PostgreSQL advisory lock reads it like the Kafka relays read their outbox shards, and
the others stand by to take over.

What survives a crash: every `CHECKPOINT_S` the engine's state is saved with the feed position
it is valid at, and the feed up to there deleted. A new evaluator restores the checkpoint and
replays the feed after it. Transitions are recorded as they happen, before the checkpoint, but the
engine is deterministic and occurrence ids derive from the readings, so the replay records the
same transitions, which are already there: nothing is missed, nothing recorded or notified
twice (`hub.alerts.store.record`).

The same leader delivers queued notifications, in order per notifier: a notifier that fails
holds its later notifications back until the retry (an `active` never arrives after its
`cleared`), while the others carry on. Delivery never blocks evaluation (its own task and
connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hub.alerts.engine import Engine, Event, Transition
from hub.alerts.facts import agent_health, limits_version, machine_states, profile_limits
from hub.alerts.feed import KIND_EVENTS, FeedRow, decode_body, decode_events
from hub.alerts.manage import Shelf, api_rules, list_shelves, rules_version, shelved
from hub.alerts.notify import DeliveryError, Sender
from hub.alerts.rules import AlertsConfig, Rule
from hub.alerts.sqlite_store import SqliteAlertStore
from hub.alerts.store import (
    EVALUATOR_LOCK,
    AlertStore,
    Checkpoint,
    PostgresAlertStore,
    notification_body,
)
from hub.errors import StorageUnavailable
from hub.sql import Database, open_database
from hub.sql.singleton import PG_ERRORS, connect, wait, wait_any
from hub.storage.snapshot_order import Position
from millstream_common.backoff import Backoff

__all__ = ["EVALUATOR_LOCK", "AlertEvaluator"]

log = logging.getLogger(__name__)

FEED_ROWS = 2_000  # feed rows read per query
CHECKPOINT_S = 5.0
TICK_S = 0.5  # how often pending `for` timers are checked while the feed is quiet
STATES_S = 2.0  # how often machine states and agent health are judged (stale/offline/edge)
PG_TIMEOUT_S = 30.0
DELIVER_BATCH = 100
RETRY_CAP_S = 300.0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class AlertEvaluator:
    """Feed → engine → recorded transitions → notifications; `await run(stop)`."""

    def __init__(
        self,
        cfg: AlertsConfig,
        dsn: str,
        senders: dict[str, Sender],
        *,
        clock: Callable[[], int] = _now_ms,
        on_transitions: Callable[[Sequence[Transition]], None] | None = None,
        on_changes: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self._dsn = dsn  # postgresql://… or sqlite:///… (the hub's storage)
        self._sqlite = urlsplit(dsn).scheme == "sqlite"
        self._senders = senders
        # Kafka notifiers hand over to the outbox in PostgreSQL: exactly once, like telemetry.
        self._outboxed = {n.name for n in cfg.notifiers if n.kind == "kafka"}
        self._clock = clock
        self._on_transitions = on_transitions
        # Each newly recorded transition, for the live clients of this instance (SQLite: no
        # NOTIFY carries them, see hub/alerts/live.py).
        self._on_changes = on_changes
        self.state = "starting"
        self.cursor: Position | None = None
        self.evaluated = 0
        self.rules = len(cfg.rules)
        self._failing = False

    def health(self) -> dict[str, Any]:
        """Detail for `/health/ready`."""
        return {"evaluator": self.state, "feed_cursor": self.cursor, "rules": self.rules}

    async def run(self, stop: asyncio.Event) -> None:
        """Evaluate until `stop`; PostgreSQL failures end a session and are retried."""
        backoff = Backoff(0.5, 30.0)
        try:
            while not stop.is_set():
                try:
                    await self._session(stop, backoff)
                except StorageUnavailable as exc:
                    self.state = f"unavailable: {exc}"[:300]
                    if not self._failing:
                        log.warning("alert evaluator: %s", exc)
                    self._failing = True
                    await wait(stop, backoff.next_delay())
        finally:
            for sender in self._senders.values():
                with contextlib.suppress(Exception):
                    await sender.aclose()

    async def _open_store(self, who: str) -> AlertStore:
        if self._sqlite:
            return await SqliteAlertStore.from_url(self._dsn).__aenter__()
        return PostgresAlertStore(await connect(self._dsn, who))

    async def _session(self, stop: asyncio.Event, backoff: Backoff) -> None:
        store = await self._open_store("alert evaluator")
        try:
            try:
                if not await store.lead(stop, self._standby):
                    return
                async with asyncio.TaskGroup() as tg:
                    done = asyncio.Event()
                    deliver = tg.create_task(self._deliver(done), name="alert-delivery")
                    try:
                        await self._evaluate(store, stop, backoff)
                    finally:
                        done.set()
                        await deliver
            except* PG_ERRORS as group:
                first = group.exceptions[0]
                raise StorageUnavailable(f"lost PostgreSQL: {first}") from first
            except* StorageUnavailable as group:
                raise group.exceptions[0] from None
        finally:
            with contextlib.suppress(*PG_ERRORS, StorageUnavailable):
                await store.aclose()

    def _standby(self) -> None:
        self.state = "standby: another hub instance evaluates"

    async def _evaluate(self, store: AlertStore, stop: asyncio.Event, backoff: Backoff) -> None:
        async with open_database(self._dsn, max_connections=1) as db:
            await self._evaluate_with(store, db, stop, backoff)

    async def _evaluate_with(
        self, store: AlertStore, db: Database, stop: asyncio.Event, backoff: Backoff
    ) -> None:
        async with asyncio.timeout(PG_TIMEOUT_S):
            cp = await store.load_checkpoint()
        # API rules and profile limits first: the checkpoint holds the state of their watches.
        engine = self._engine([*self.cfg.rules, *(r for r, _w, _t in await api_rules(db))])
        engine.set_limits(await profile_limits(db))
        engine.restore(cp.state)
        self.cursor = cp.cursor
        wake = asyncio.Event()
        await store.listen(wake, None)
        log.info(
            "alert evaluator: active, %d rules, from feed position %s",
            len(engine.rules) + len(engine.state_rules) + len(engine.event_rules),
            cp.cursor,
        )
        self.state = "ok"
        self._failing = False
        backoff.reset()
        await self._loop(store, engine, cursor=cp.cursor, wake=wake, stop=stop, db=db)

    async def _loop(
        self,
        store: AlertStore,
        engine: Engine,
        *,
        cursor: Position,
        wake: asyncio.Event,
        stop: asyncio.Event,
        db: Database,
    ) -> None:
        saved_at = time.monotonic()
        seen = _Seen(await rules_version(db), await limits_version(db))
        ticked_at = judged_at = 0.0
        held: list[FeedRow] = []  # fetched, not yet old enough to evaluate (see _release)
        while not stop.is_set():
            wake.clear()
            fetched = held[-1].position if held else cursor
            async with asyncio.timeout(PG_TIMEOUT_S):
                rows = await store.fetch_feed(fetched, FEED_ROWS)
            held += rows
            release, held = _release(held, self._clock() - self.cfg.reorder)
            out: list[Transition] = []
            for (site, line, machine), (readings, now) in _by_machine(release).items():
                out += engine.readings(site, line, machine, readings, now)
                self.evaluated += len(readings)
            for (site, line, machine), (events, now) in _events_by_machine(release).items():
                out += engine.events(site, line, machine, events, now)
            if time.monotonic() - ticked_at >= TICK_S:
                out += engine.tick(self._clock())
                ticked_at = time.monotonic()
            if time.monotonic() - judged_at >= STATES_S:
                engine = await self._refresh(engine, db, seen)
                out += await self._judge_states(engine, db)
                judged_at = time.monotonic()
            if out:
                await self._record(store, out, seen.shelves)
            if release:
                cursor = self.cursor = release[-1].position
            if time.monotonic() - saved_at >= CHECKPOINT_S:
                async with asyncio.timeout(PG_TIMEOUT_S):
                    await store.save_checkpoint(Checkpoint(cursor, engine.export()), self._clock())
                saved_at = time.monotonic()
            if len(rows) < FEED_ROWS:
                wait = min(TICK_S, store.poll_s)
                if held:  # until the oldest held row may be evaluated
                    due = held[0].created_at + self.cfg.reorder - self._clock()
                    wait = min(wait, max(due / 1000, 0.01))
                await wait_any(wake, stop, wait)
        async with asyncio.timeout(PG_TIMEOUT_S):
            await store.save_checkpoint(Checkpoint(cursor, engine.export()), self._clock())

    async def _record(self, store: AlertStore, out: list[Transition], shelves: list[Shelf]) -> None:
        now = self._clock()
        silenced = functools.partial(_silenced, shelves, now)
        async with asyncio.timeout(PG_TIMEOUT_S):
            changes = await store.record(out, now, silenced)
        if self._on_transitions is not None:
            self._on_transitions(out)
        if self._on_changes is not None:
            for change in changes:
                self._on_changes(change)

    async def _refresh(self, engine: Engine, db: Database, seen: _Seen) -> Engine:
        """Pick up changed API rules and profile limits, and the shelves in force."""
        latest = await rules_version(db)
        if latest != seen.rules:
            engine = await self._with_api_rules(engine, db)
            seen.rules = latest
        latest = await limits_version(db)
        if latest != seen.metas:
            engine.set_limits(await profile_limits(db))
            seen.metas = latest
        seen.shelves = await list_shelves(db, self._clock())
        return engine

    async def _with_api_rules(self, engine: Engine, db: Database) -> Engine:
        """The engine with the API's current rules beside the config's, state carried over."""
        fresh = self._engine([*self.cfg.rules, *(r for r, _who, _ms in await api_rules(db))])
        fresh.set_limits(engine.limits)
        fresh.restore(engine.export())
        return fresh

    def _engine(self, rules: list[Rule]) -> Engine:
        self.rules = len(rules)
        return Engine(rules, late_after_ms=self.cfg.late_after, limits_policy=self.cfg.limits)

    async def _judge_states(self, engine: Engine, db: Database) -> list[Transition]:
        if not engine.state_rules:
            return []
        now = self._clock()
        try:
            machines = await machine_states(db, now)
            agents = await agent_health(db)
        except StorageUnavailable as exc:
            log.warning("alert evaluator: cannot read machine states: %s", exc)
            return []
        return [*engine.machine_states(machines, now), *engine.agent_health(agents, now)]

    async def _deliver(self, done: asyncio.Event) -> None:
        """Deliver queued notifications until `done` (own connection; see module docstring)."""
        store = await self._open_store("alert evaluator")
        wake = asyncio.Event()
        try:
            await store.listen(None, wake)
            while not done.is_set():
                wake.clear()
                async with asyncio.timeout(PG_TIMEOUT_S):
                    due = await store.claim(self._clock(), DELIVER_BATCH)
                held: set[str] = set()
                for name in dict.fromkeys(p.notifier for p in due):
                    mine = [p for p in due if p.notifier == name]
                    if name in self._outboxed:
                        async with asyncio.timeout(PG_TIMEOUT_S):
                            await store.to_outbox(mine)
                        continue
                    sender = self._senders.get(name)
                    if sender is None:
                        continue  # a notifier since removed from the config: kept, not sent
                    try:
                        await sender.send([notification_body(p) for p in mine])
                    except DeliveryError as exc:
                        held.add(name)
                        first = mine[0]
                        delay = min(RETRY_CAP_S, 2.0 ** min(first.attempts, 10))
                        log.warning("alert notifier %s: %s; retrying in %.0f s", name, exc, delay)
                        async with asyncio.timeout(PG_TIMEOUT_S):
                            await store.retry_later(
                                name, first.id, self._clock() + int(delay * 1000), str(exc)
                            )
                        continue
                    async with asyncio.timeout(PG_TIMEOUT_S):
                        await store.delivered([p.id for p in mine])
                if len(due) < DELIVER_BATCH or held:
                    await wait_any(wake, done, min(1.0, 5 * store.poll_s))
        finally:
            with contextlib.suppress(*PG_ERRORS, StorageUnavailable):
                await store.aclose()


@dataclass
class _Seen:
    """What the evaluator last read of API rules, machines' meta and shelves."""

    rules: tuple[int, int]
    metas: tuple[int, int]
    shelves: list[Shelf] = field(default_factory=list)


def _silenced(shelves: list[Shelf], now_ms: int, t: Transition) -> bool:
    return shelved(shelves, t, now_ms)


def _release(held: list[FeedRow], cutoff_ms: int) -> tuple[list[FeedRow], list[FeedRow]]:
    """Split the held rows into the prefix begun before `cutoff_ms` and the rest.

    Why hold rows at all: the shared subscription hands a machine's consecutive batches to
    different hub instances, which may commit them in the other order; evaluated at once, the
    later-committed older batch would look like history. Rows are evaluated `alerts.reorder` after
    their transaction began, with each machine's readings sorted by time across them; only a
    prefix is released, so the checkpoint's cursor never passes a row not yet evaluated."""
    n = 0
    while n < len(held) and held[n].created_at <= cutoff_ms:
        n += 1
    return held[:n], held[n:]


def _by_machine(
    rows: list[FeedRow],
) -> dict[tuple[str, str, str], tuple[list[tuple[str, int, Any, str]], int]]:
    """Each machine's readings of these rows in time order, and the latest commit among them."""
    out: dict[tuple[str, str, str], tuple[list[tuple[str, int, Any, str]], int]] = {}
    for row in rows:
        if row.kind == KIND_EVENTS:
            continue
        key = (row.site, row.line, row.machine)
        readings, now = out.get(key, ([], 0))
        readings += decode_body(row.body)
        out[key] = (readings, max(now, row.created_at))
    for readings, _now in out.values():
        readings.sort(key=lambda r: r[1])  # stable: one series' equal timestamps keep order
    return out


def _events_by_machine(rows: list[FeedRow]) -> dict[tuple[str, str, str], tuple[list[Event], int]]:
    """Each machine's events of these rows in time order, and the latest commit among them."""
    out: dict[tuple[str, str, str], tuple[list[Event], int]] = {}
    for row in rows:
        if row.kind != KIND_EVENTS:
            continue
        key = (row.site, row.line, row.machine)
        events, now = out.get(key, ([], 0))
        events += decode_events(row.body)
        out[key] = (events, max(now, row.created_at))
    for events, _now in out.values():
        events.sort(key=lambda e: e.ts)  # stable: an alarm's raise stays before its clear
    return out
