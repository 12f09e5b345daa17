"""The hub's one-at-a-time tasks each lead with an advisory lock of their own (real PostgreSQL).

The Sparkplug host and the alert evaluator once both used 0x6D73_000B: on a hub with both, the
one that came second stood by for the other for ever ("another hub instance evaluates").
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from hub.alerts.store import EVALUATOR_LOCK
from hub.ingest.sparkplug_host import SPARKPLUG_LOCK
from hub.sql.singleton import lead

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_sparkplug_host_and_the_alert_evaluator_lead_side_by_side(pg_dsn: str) -> None:
    stop = asyncio.Event()
    standby: list[str] = []
    first, second = await asyncio.gather(asyncpg.connect(pg_dsn), asyncpg.connect(pg_dsn))
    try:
        assert await lead(first, SPARKPLUG_LOCK, stop, lambda: standby.append("sparkplug"))
        assert await asyncio.wait_for(
            lead(second, EVALUATOR_LOCK, stop, lambda: standby.append("evaluator")), 10
        )
        assert standby == []
    finally:
        await first.close()
        await second.close()
