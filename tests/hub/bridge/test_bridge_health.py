"""`/health/ready` carries the bridges' detail and is not made unready by them."""

from __future__ import annotations

from typing import Any

import httpx

from hub.api import create_app
from hub.metrics import HubMetrics


class _Health:
    broker_connected = True

    async def ping_storage(self) -> None:
        return None

    def bridge_health(self) -> dict[str, Any]:
        return {"kafka": {"relay": "unavailable: Kafka down", "outbox_rows": 12}}


async def test_ready_reports_relay_lag_and_stays_ready_while_kafka_is_down() -> None:
    transport = httpx.ASGITransport(app=create_app(_Health(), HubMetrics()))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        resp = await client.get("/health/ready")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert body["kafka"] == {"relay": "unavailable: Kafka down", "outbox_rows": 12}
