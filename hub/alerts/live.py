"""Alert changes to this instance's WebSocket clients: LISTEN to what any instance records.

The evaluator and the acknowledge API announce each transition with NOTIFY in the transaction
that records it (`hub.alerts.store.CHANGES_CHANNEL`), so the announcement goes out only once it
is committed, and every hub instance hears it; each pushes it to its own `/ws` clients that
subscribed to alerts (`{"type": "subscribe", "alerts": true}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import asyncpg

from hub.alerts.store import CHANGES_CHANNEL
from hub.errors import StorageUnavailable
from hub.live import Fanout
from hub.sql.singleton import PG_ERRORS, connect, wait, wait_any
from millstream_common.backoff import Backoff

__all__ = ["relay_alert_changes"]

log = logging.getLogger(__name__)

_LOST: tuple[type[BaseException], ...] = (StorageUnavailable, *PG_ERRORS)


async def relay_alert_changes(dsn: str, fanout: Fanout, stop: asyncio.Event) -> None:
    """Until `stop`: listen for alert changes and publish them to the fan-out (reconnecting)."""
    backoff = Backoff(0.5, 30.0)

    def heard(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            change = json.loads(payload)
        except ValueError:
            return
        if isinstance(change, dict):
            fanout.publish_alert(change)

    while not stop.is_set():
        conn: asyncpg.Connection | None = None
        try:
            conn = await connect(dsn, "alert changes")
            await conn.add_listener(CHANGES_CHANNEL, heard)
            backoff.reset()
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            while not (stop.is_set() or lost.is_set()):
                await wait_any(lost, stop, 3600.0)
        except _LOST as exc:
            log.debug("alert changes: %s", exc)
        finally:
            if conn is not None:
                with contextlib.suppress(*PG_ERRORS):
                    await conn.close(timeout=5)
        if not stop.is_set():
            await wait(stop, backoff.next_delay())
