"""Publishes receipts: `ms/v1/receipts/{src}` with the committed seqs and their digests, QoS 1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import wire
from hub.metrics import HubMetrics
from hub.receipts.tracker import ReceiptTracker

__all__ = ["Publisher", "publish_receipts"]

# The tracker enforces "at most every 200 ms per src"; ticking faster keeps the first receipt
# after a quiet period prompt.
TICK_S = 0.05


class Publisher(Protocol):
    """Anything that can queue an MQTT PUBLISH."""

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> object: ...


async def publish_receipts(
    tracker: ReceiptTracker,
    publisher: Publisher,
    metrics: HubMetrics,
    clock_ms: Callable[[], int],
    on_sent: Callable[[str, list[int]], None] | None = None,
) -> None:
    """Forever: publish whatever the tracker says is due; `on_sent(src, seqs)` after each
    (tracing: hub/ingest/tracing.py)."""
    while True:
        for src, batches in tracker.due(clock_ms()):
            seqs = wire.coalesce_seqs(seq for seq, _ in batches)
            # Every classified batch has a digest; one built without (tools, tests) is named by
            # its seq alone rather than making the whole receipt invalid.
            named = [(seq, digest) for seq, digest in batches if digest]
            payload = wire.encode_receipt(seqs, named)
            publisher.publish(wire.receipt_topic(src), payload, qos=1)
            metrics.receipts.inc()
            if on_sent is not None:
                on_sent(src, [seq for seq, _ in batches])
        await asyncio.sleep(TICK_S)
