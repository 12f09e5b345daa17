"""Publishes receipts: `ms/v1/receipts/{src}` with the committed seq ranges, QoS 1."""

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

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None: ...


async def publish_receipts(
    tracker: ReceiptTracker,
    publisher: Publisher,
    metrics: HubMetrics,
    clock_ms: Callable[[], int],
) -> None:
    """Forever: publish whatever the tracker says is due."""
    while True:
        for src, seqs in tracker.due(clock_ms()):
            payload = wire.encode_receipt(wire.coalesce_seqs(seqs))
            publisher.publish(wire.receipt_topic(src), payload, qos=1)
            metrics.receipts.inc()
        await asyncio.sleep(TICK_S)
