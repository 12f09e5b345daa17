"""The conformance view for device makers: a device's messages as the hub judges them.

`millstream-hub devices watch NAME` listens (with the hub's broker user) to every topic the
identity may publish and runs each message through the hub's own judgement — the same
`classify` the ingest runs, then the owner check — and, for telemetry it accepts, looks up how
many of its readings storage holds. A maker develops against a real hub and sees each mistake in
words, with the field it is about.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

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

__all__ = ["Verdict", "judge", "watch"]

STORE_WAIT_S = 2.0  # how long the view waits for the hub to commit before counting


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the hub makes of one message."""

    topic: str
    accepted: bool
    text: str  # "10 readings, seq 4" or the refusal with its reason and field
    batch: TelemetryBatch | None = None


def judge(msg: Incoming, owners: Owners) -> Verdict:
    """The hub's judgement of `msg` (pure: what the ingest would store or set aside)."""
    result = classify(msg)
    if isinstance(result, TelemetryBatch):
        refused = owners.judge(msg, result)
        if refused is not None:
            result = refused
    if isinstance(result, DeadLetter):
        return Verdict(msg.topic, False, f"refused ({result.reason}): {result.message}")
    if isinstance(result, TelemetryBatch):
        text = f"{len(result.readings)} readings, src {result.src}, seq {result.seq}"
        if result.refused is not None:
            text += f"; set aside: {result.refused.message}"
        return Verdict(msg.topic, True, text, result)
    if result is None:
        return Verdict(msg.topic, True, "empty (clears a retained message)")
    return Verdict(msg.topic, True, f"{type(result).__name__.removesuffix('Update')} accepted")


async def _stored(db: Database, batch: TelemetryBatch) -> int:
    rows = await db.fetch(
        "SELECT count(*) AS n FROM readings r JOIN series s ON s.id = r.series_id"
        " WHERE s.site = $1 AND s.line = $2 AND s.machine = $3 AND s.tag = $4 AND r.ts = $5",
        batch.site,
        batch.line,
        batch.machine,
        batch.readings[0].tag,
        batch.readings[0].ts,
    )
    return int(rows[0]["n"])


async def watch(
    mqtt: MqttConfig,
    db: Database,
    identity: Identity,
    owners: Owners,
    *,
    connect_timeout_s: float = 15.0,
    ready: Callable[[], None] = lambda: None,
) -> AsyncIterator[str]:
    """One line per message the identity publishes (until the caller stops iterating)."""
    machines = identity.machines or ("+",)
    base = f"{wire.PREFIX}/{identity.site}/{identity.line}"
    topics = [f"{base}/{m}/{k}" for m in machines for k in MACHINE_KINDS]
    queue: asyncio.Queue[Incoming] = asyncio.Queue()
    session = MqttSession(
        mqtt,
        f"millstream-watch-{uuid.uuid4().hex[:12]}",
        queue.put_nowait,
        topics=[(t, SubscribeOptions(qos=1, retainHandling=2)) for t in topics],
        persistent=False,
        channel="watch",
    )
    async with session:
        await session.wait_subscribed(connect_timeout_s)
        ready()
        while True:
            msg = await queue.get()
            session.ack([msg])
            verdict = judge(msg, owners)
            line = f"{msg.topic}: {'accepted' if verdict.accepted else 'REFUSED'} — {verdict.text}"
            if verdict.batch is not None and verdict.batch.readings:
                await asyncio.sleep(STORE_WAIT_S)
                found = await _stored(db, verdict.batch)
                line += "; stored" if found else "; not stored yet (is the hub running?)"
            yield line
