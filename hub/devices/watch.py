"""The conformance view for device makers: a device's messages as the hub judges them.

`Watch` listens (with the hub's broker user) to every topic an identity may publish and runs each
message through the hub's own judgement — the same `classify` the ingest runs, then the owner
check — and, for telemetry it accepts, looks up how many of its readings storage holds. A maker
develops against a real hub and sees each mistake in words, with the field it is about.

`millstream-hub devices watch NAME` prints each `Judged` as a line; the API's
`/api/v1/identities/{name}/watch` WebSocket sends each as JSON (the dashboard's watch view).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from paho.mqtt.subscribeoptions import SubscribeOptions

import wire
from hub.config import MqttConfig
from hub.devices.identities import MACHINE_KINDS, Identity
from hub.ingest.classify import classify
from hub.ingest.message import Incoming
from hub.ingest.mqtt import MqttSession
from hub.ingest.owners import Owners
from hub.sql import Database
from hub.storage import DeadLetter, TelemetryBatch

__all__ = ["Judged", "Verdict", "Watch", "field_of", "judge", "topics_of"]

STORE_WAIT_S = 2.0  # how long the view waits for the hub to commit a batch before counting
STORE_POLL_S = 0.1
# wire's messages start with the field they are about ("readings[3].ts: …", "src: …").
_FIELD = re.compile(r"^([A-Za-z_][\w-]*(?:\[\d+\])?(?:\.[A-Za-z_][\w-]*(?:\[\d+\])?)*): ")


def field_of(message: str) -> str | None:
    """The field a refusal's message is about, or None when it names none."""
    found = _FIELD.match(message)
    return found.group(1) if found else None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the hub makes of one message."""

    topic: str
    accepted: bool
    text: str  # "10 readings, src press-gw, seq 4" or the refusal with its reason and field
    batch: TelemetryBatch | None = None
    reason: str | None = None  # the refusal's stable code (wire.REASONS), also for a partial one
    field: str | None = None  # the field the refusal is about ("readings[3].ts")


def _refused(dead: DeadLetter, *, partly: bool = False) -> tuple[str, str | None]:
    # A partly refused batch's message lists its readings' errors after a summary
    # ("2 of 5 readings refused, the rest stored: readings[3].v: …").
    detail = dead.message.split(": ", 1)[-1] if partly else dead.message
    return dead.reason, field_of(detail)


def judge(msg: Incoming, owners: Owners) -> Verdict:
    """The hub's judgement of `msg` (pure: what the ingest would store or set aside)."""
    result = classify(msg)
    if isinstance(result, TelemetryBatch):
        refused = owners.judge(msg, result)
        if refused is not None:
            result = refused
    if isinstance(result, DeadLetter):
        reason, field = _refused(result)
        text = f"refused ({result.reason}): {result.message}"
        return Verdict(msg.topic, False, text, reason=reason, field=field)
    if isinstance(result, TelemetryBatch):
        text = f"{len(result.readings)} readings, src {result.src}, seq {result.seq}"
        if result.refused is None:
            return Verdict(msg.topic, True, text, result)
        reason, field = _refused(result.refused, partly=True)
        text += f"; set aside: {result.refused.message}"
        return Verdict(msg.topic, True, text, result, reason, field)
    if result is None:
        return Verdict(msg.topic, True, "empty (clears a retained message)")
    return Verdict(msg.topic, True, f"{type(result).__name__.removesuffix('Update')} accepted")


@dataclass(frozen=True, slots=True)
class Judged:
    """One message as the hub judged it, and how many of its readings storage holds."""

    verdict: Verdict
    received_at: int  # epoch ms
    stored: int | None = None  # None: it has no readings to store

    def line(self) -> str:
        """The CLI's line: topic, verdict and what storage holds."""
        v = self.verdict
        line = f"{v.topic}: {'accepted' if v.accepted else 'REFUSED'} — {v.text}"
        if self.stored is None or v.batch is None:
            return line
        total = len(v.batch.readings)
        if self.stored >= total:
            return line + "; stored"
        if self.stored:
            return line + f"; {self.stored} of {total} stored so far"
        return line + "; not stored yet (is the hub running?)"

    def doc(self) -> dict[str, object]:
        """The API's JSON form (docs/api.md "Watching an identity")."""
        v, batch = self.verdict, self.verdict.batch
        return {
            "type": "verdict",
            "topic": v.topic,
            "kind": v.topic.rsplit("/", 1)[-1],
            "received_at": self.received_at,
            "accepted": v.accepted,
            "text": v.text,
            "reason": v.reason,
            "field": v.field,
            "readings": None if batch is None else len(batch.readings),
            "src": None if batch is None else batch.src,
            "seq": None if batch is None else batch.seq,
            "stored": self.stored,
        }


def topics_of(identity: Identity) -> list[str]:
    """Every topic the identity may publish for a machine (what `Watch` subscribes to)."""
    machines = identity.machines or ("+",)
    base = f"{wire.PREFIX}/{identity.site}/{identity.line}"
    return [f"{base}/{m}/{k}" for m in machines for k in MACHINE_KINDS]


async def _stored(db: Database, batch: TelemetryBatch) -> int:
    """How many of the batch's readings (by tag and time) storage holds."""
    wanted = {(r.tag, r.ts) for r in batch.readings}
    rows = await db.fetch(
        "SELECT s.tag AS tag, r.ts AS ts FROM readings r JOIN series s ON s.id = r.series_id"
        " WHERE s.site = $1 AND s.line = $2 AND s.machine = $3 AND r.ts BETWEEN $4 AND $5",
        batch.site,
        batch.line,
        batch.machine,
        min(ts for _, ts in wanted),
        max(ts for _, ts in wanted),
    )
    return len(wanted & {(r["tag"], r["ts"]) for r in rows})


class Watch:
    """A live view of one identity's messages: `async with Watch(...) as w` returns once the
    broker acknowledged the subscriptions (`TimeoutError` if it did not within
    `connect_timeout_s`); `async for judged in w` then yields each message, judged."""

    def __init__(
        self,
        mqtt: MqttConfig,
        db: Database,
        identity: Identity,
        owners: Owners,
        *,
        connect_timeout_s: float = 15.0,
        store_wait_s: float = STORE_WAIT_S,
    ) -> None:
        self.identity = identity
        self.topics = topics_of(identity)
        self._db = db
        self._owners = owners
        self._connect_timeout_s = connect_timeout_s
        self._store_wait_s = store_wait_s
        self._queue: asyncio.Queue[Incoming] = asyncio.Queue()
        self._session = MqttSession(
            mqtt,
            f"millstream-watch-{uuid.uuid4().hex[:12]}",
            self._queue.put_nowait,
            topics=[(t, SubscribeOptions(qos=1, retainHandling=2)) for t in self.topics],
            persistent=False,
            channel="watch",
        )

    async def __aenter__(self) -> Self:
        await self._session.__aenter__()
        try:
            await self._session.wait_subscribed(self._connect_timeout_s)
        except BaseException:
            await self._session.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._session.__aexit__(exc_type, exc, tb)

    async def __aiter__(self) -> AsyncIterator[Judged]:
        while True:
            msg = await self._queue.get()
            self._session.ack([msg])
            verdict = judge(msg, self._owners)
            stored = None
            if verdict.batch is not None and verdict.batch.readings:
                stored = await self._wait_stored(verdict.batch)
            yield Judged(verdict, msg.received_at, stored)

    async def _wait_stored(self, batch: TelemetryBatch) -> int:
        # The hub commits within its flush window (tens of ms): poll until all are there rather
        # than sleep the whole wait, so a device publishing every second is not left behind.
        deadline = time.monotonic() + self._store_wait_s
        while True:
            found = await _stored(self._db, batch)
            if found >= len(batch.readings) or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(STORE_POLL_S)
