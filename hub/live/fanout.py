"""In-process fan-out of validated readings to live subscribers, indexed by machine.

The ingest announces every validated batch (`publish`, on the event loop, before its commit);
each subscriber's `ClientBuffer` receives the updates for machines it subscribed to. `publish`
never waits on a client: delivering is appending to a bounded buffer and setting an event.
The fan-out also keeps the newest announced reading per tag, so a client subscribing while a
batch is still on its way to storage starts from it rather than from the stored value before.
It counts the machines watched per site and tells `on_sites` the watched sites whenever the
first machine of a site gets a subscriber or the last one loses it: with Redis, the instance
receives other instances' updates of those sites only (hub/bridge/redis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Container, Iterable, Sequence
from typing import Any

from hub.live.buffer import ClientBuffer, Update, filtered, make_update
from hub.storage import TelemetryBatch
from wire import ReadingLike

__all__ = ["Fanout", "Subscriber", "machine_key", "updates_from_batches"]


def machine_key(site: str, line: str, machine: str) -> str:
    """The `site/line/machine` string clients subscribe with."""
    return f"{site}/{line}/{machine}"


def updates_from_batches(
    batches: Iterable[TelemetryBatch], wanted: Container[str] | None = None
) -> list[Update]:
    """One update per committed telemetry batch (of `wanted` machines), readings in wire form."""
    out = []
    for b in batches:
        key = machine_key(b.site, b.line, b.machine)
        if wanted is not None and key not in wanted:
            continue
        readings: list[dict[str, Any]] = [
            {"tag": r.tag, "ts": r.ts, "v": r.v, "q": r.q} for r in b.readings
        ]
        if readings:
            out.append(make_update(key, readings))
    return out


class Subscriber:
    """One live client: what it subscribed to, its pending buffer, and a wake-up event."""

    def __init__(self, max_readings: int = 10_000) -> None:
        self.buffer = ClientBuffer(max_readings)
        self.ready = asyncio.Event()
        # machine -> tags wanted (None: every tag of the machine)
        self.machines: dict[str, frozenset[str] | None] = {}
        self.alerts = False  # wants alert changes
        self.said: list[dict[str, Any]] = []  # messages for a subscriber that is not a socket

    def say(self, doc: dict[str, Any]) -> None:
        """Send a message as is (the WebSocket client overrides this)."""
        self.said.append(doc)
        self.ready.set()

    def push(self, update: Update) -> None:
        """Queue an update (already cut to this subscriber's tags) and wake its sender.

        A subscriber that can send at once overrides this (the WebSocket client does).
        """
        self.buffer.add(update)
        self.ready.set()


class Fanout:
    """Subscribers by machine; `publish` hands each committed batch to those who want it."""

    def __init__(self, on_sites: Callable[[frozenset[str]], None] | None = None) -> None:
        """`on_sites`: called with the watched sites each time that set changes."""
        self._by_machine: dict[str, set[Subscriber]] = {}
        self._sites: dict[str, int] = {}  # site -> machines of it with a subscriber
        self._on_sites = on_sites
        self._subscribers: set[Subscriber] = set()
        self._coalesced_gone = 0  # skipped by clients that have disconnected
        self._newest: dict[str, dict[str, ReadingLike]] = {}  # machine -> tag -> reading
        self._alerts: set[Subscriber] = set()

    @property
    def clients(self) -> int:
        """Connected subscribers."""
        return len(self._subscribers)

    @property
    def sites(self) -> frozenset[str]:
        """Sites with at least one subscribed machine."""
        return frozenset(self._sites)

    @property
    def coalesced(self) -> int:
        """Readings clients skipped because they were behind (newest kept), since start."""
        return self._coalesced_gone + sum(s.buffer.coalesced for s in self._subscribers)

    def add(self, sub: Subscriber) -> None:
        """Register a subscriber (with no machines yet)."""
        self._subscribers.add(sub)

    def remove(self, sub: Subscriber) -> None:
        """Forget a subscriber and all its subscriptions."""
        if sub in self._subscribers:
            self._subscribers.discard(sub)
            self._coalesced_gone += sub.buffer.coalesced
        for machine in list(sub.machines):
            self.unsubscribe(sub, machine)
        self._alerts.discard(sub)

    def watch_alerts(self, sub: Subscriber, on: bool) -> None:
        """Send (or stop sending) alert changes to `sub`."""
        sub.alerts = on
        if on:
            self._alerts.add(sub)
        else:
            self._alerts.discard(sub)

    def publish_alert(self, change: dict[str, Any]) -> None:
        """An alert changed (any hub instance's evaluator or API): tell who watches alerts."""
        message = {"type": "alert", **change}
        for sub in self._alerts:
            sub.say(message)

    def subscribe(self, sub: Subscriber, machine: str, tags: frozenset[str] | None) -> None:
        """Send `machine`'s updates (only `tags`, or all when None) to `sub`."""
        current = sub.machines.get(machine, frozenset())
        if tags is None or (machine in sub.machines and current is None):
            sub.machines[machine] = None
        else:
            sub.machines[machine] = (current or frozenset()) | tags
        subs = self._by_machine.get(machine)
        if subs is None:
            subs = self._by_machine[machine] = set()
            self._count_site(machine, +1)
        subs.add(sub)

    def unsubscribe(self, sub: Subscriber, machine: str) -> None:
        """Stop sending `machine`'s updates to `sub`."""
        sub.machines.pop(machine, None)
        subs = self._by_machine.get(machine)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_machine[machine]
                self._count_site(machine, -1)

    def _count_site(self, machine: str, delta: int) -> None:
        site = machine.split("/", 1)[0]
        n = self._sites.get(site, 0) + delta
        if n > 0:
            self._sites[site] = n
        else:
            self._sites.pop(site, None)
        came_or_went = n == 0 or (n == 1 and delta > 0)
        if came_or_went and self._on_sites is not None:
            self._on_sites(self.sites)

    def deliver(self, updates: Sequence[Update]) -> None:
        """Hand updates to their machines' subscribers (from this or another hub instance)."""
        for update in updates:
            subs = self._by_machine.get(update.machine)
            if not subs:
                continue
            # Subscribers of whole machines share the update (and its encoded message); those
            # wanting some tags share one filtered copy per distinct tag set.
            views: dict[frozenset[str], Update | None] = {}
            for sub in subs:
                tags = sub.machines.get(update.machine)
                if tags is None:
                    view: Update | None = update
                elif tags in views:
                    view = views[tags]
                else:
                    view = views[tags] = filtered(update, tags)
                if view is not None:
                    sub.push(view)

    def newest(self, machine: str) -> list[dict[str, Any]]:
        """The newest announced reading of each of `machine`'s tags, in wire form."""
        return [
            {"tag": r.tag, "ts": r.ts, "v": r.v, "q": r.q}
            for r in self._newest.get(machine, {}).values()
        ]

    def publish(self, batches: Sequence[TelemetryBatch]) -> None:
        """The ingest's live hook: announce validated telemetry batches."""
        for b in batches:
            newest = self._newest.setdefault(machine_key(b.site, b.line, b.machine), {})
            for r in b.readings:
                cur = newest.get(r.tag)
                if cur is None or r.ts >= cur.ts:
                    newest[r.tag] = r
        if self._by_machine:
            self.deliver(updates_from_batches(batches, self._by_machine))
