"""The hub as Sparkplug B primary host application: one instance at a time, its own broker session.

Why a session of its own: the host's STATE death certificate is that connection's last will, so
only the instance that is the host may hold it — were every instance's main session to carry
it, any one instance stopping would tell every edge node the host is gone. Why one instance:
Sparkplug is stateful per edge node (aliases, a gap-free seq), which a shared subscription,
splitting messages between instances, would break. So the instance holding the Sparkplug lease
(a PostgreSQL advisory lock, as for the Kafka relay; SQLite hubs are single) opens the session,
with the same client id whoever holds it: messages the broker queued in that persistent session
while one host died are delivered to the next.

On (re)connect it subscribes to every edge node's births, data and deaths and publishes
`spBv1.0/STATE/{host_id}` `{"online": true, "timestamp": T}` retained, with
`{"online": false, "timestamp": T}` as its will (Sparkplug 3.0 §5.12, the same T), so edge nodes
that honour STATE keep their data while the host is away and send it as history after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from paho.mqtt.subscribeoptions import SubscribeOptions

from hub.config import HubConfig, SparkplugConfig
from hub.errors import StorageUnavailable
from hub.ingest.classify import Classified
from hub.ingest.message import Incoming
from hub.ingest.mqtt import MqttSession
from hub.ingest.sparkplug import REBIRTH_METRIC, SparkplugIngest
from hub.sql.database import open_database
from hub.sql.singleton import PG_ERRORS, connect, lead, wait
from hub.storage import SparkplugBirth
from millstream_common.backoff import Backoff
from wire import sparkplug as spb

__all__ = ["CHANNEL", "SPARKPLUG_LOCK", "SparkplugHost", "load_births"]

log = logging.getLogger(__name__)

SPARKPLUG_LOCK = 0x6D73_000B  # advisory lock ids: "ms" + purpose (see hub/bridge/kafka/outbox.py)
CHANNEL = "sparkplug"
LEASE_CHECK_S = 5.0  # how often the host checks it still holds the lease


async def load_births(storage_url: str) -> list[SparkplugBirth]:
    """Every edge node's and device's latest birth, as committed."""
    async with open_database(storage_url, max_connections=1) as db:
        rows = await db.fetch(
            "SELECT group_id, edge_node, device, bd_seq, metrics, received_at FROM sparkplug_births"
        )
    return [
        SparkplugBirth(
            group=r["group_id"],
            node=r["edge_node"],
            device=r["device"],
            bd_seq=r["bd_seq"],
            metrics=tuple((m[0], m[1], m[2]) for m in json.loads(r["metrics"])),
            received_at=r["received_at"],
        )
        for r in rows
    ]


def state_payload(online: bool, timestamp: int) -> bytes:
    """A STATE birth (online) or death certificate."""
    return json.dumps({"online": online, "timestamp": timestamp}).encode()


class SparkplugHost:
    """Run with `await host.run(stop)`; feeds `submit(msg, classified)` (the ingest pipeline)."""

    def __init__(
        self,
        config: HubConfig,
        submit: Callable[[Incoming, Classified | None], None],
    ) -> None:
        assert config.sparkplug is not None
        self._config = config
        self._spb: SparkplugConfig = config.sparkplug
        self._submit = submit
        self._session: MqttSession | None = None
        self.state = "starting"

    @property
    def client_id(self) -> str:
        """The host session's MQTT client id: the same on every instance (see module doc)."""
        return f"millstream-spb-{self._spb.host_id}"

    def ack(self, messages: Any) -> None:
        """PUBACK what this session delivered and the pipeline committed."""
        if self._session is not None:
            self._session.ack(messages)

    def health(self) -> dict[str, Any]:
        """Detail for `/health/ready`."""
        session = self._session
        return {
            "host_id": self._spb.host_id,
            "state": self.state,
            "connected": session is not None and session.connected,
            "subscribed": session is not None and session.subscribed,
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Host while holding the lease; stand by otherwise; retry when PostgreSQL is away."""
        backoff = Backoff(0.5, 30.0)
        while not stop.is_set():
            try:
                if urlsplit(self._config.storage).scheme == "sqlite":
                    await self._host(stop, None)  # one hub per SQLite file: always the host
                else:
                    await self._leased(stop)
                backoff.reset()
            except StorageUnavailable as exc:
                self.state = f"unavailable: {exc}"[:300]
                log.warning("Sparkplug host: %s", exc)
                await wait(stop, backoff.next_delay())

    async def _leased(self, stop: asyncio.Event) -> None:
        conn = await connect(self._config.storage, "the Sparkplug host")
        try:
            try:
                if not await lead(conn, SPARKPLUG_LOCK, stop, self._standby):
                    return
                lost = asyncio.Event()
                async with asyncio.TaskGroup() as tg:
                    watch = tg.create_task(self._watch_lease(conn, stop, lost))
                    try:
                        await self._host(stop, lost)
                    finally:
                        watch.cancel()
                if lost.is_set():
                    raise StorageUnavailable("lost the Sparkplug lease's PostgreSQL connection")
            except* PG_ERRORS as group:
                raise StorageUnavailable(f"lost PostgreSQL: {group.exceptions[0]}") from None
        finally:
            with contextlib.suppress(*PG_ERRORS):
                await conn.close(timeout=5)

    def _standby(self) -> None:
        self.state = "standby (another hub instance is the Sparkplug host)"

    @staticmethod
    async def _watch_lease(conn: Any, stop: asyncio.Event, lost: asyncio.Event) -> None:
        # The lock lives as long as this connection: if it dies, another instance may become
        # the host, so this one must stop hosting at once.
        while not stop.is_set():
            await wait(stop, LEASE_CHECK_S)
            try:
                async with asyncio.timeout(LEASE_CHECK_S):
                    await conn.fetchval("SELECT 1")
            except (*PG_ERRORS,):
                lost.set()
                return

    async def _host(self, stop: asyncio.Event, lost: asyncio.Event | None) -> None:
        self.state = "loading births"
        births = await load_births(self._config.storage)
        session: MqttSession | None = None

        def rebirth(group: str, node: str) -> None:
            body = spb.encode(
                spb.SpbPayload(
                    timestamp=time.time_ns() // 1_000_000,
                    seq=None,
                    metrics=[spb.SpbMetric(REBIRTH_METRIC, None, None, 11, True)],
                )
            )
            if session is not None:
                session.publish(spb.command_topic(group, node), body, qos=0)

        naming = spb.SpbNaming(self._spb.site, self._spb.line, self._spb.machine)
        ingest = SparkplugIngest(
            naming, rebirth, births=births, rebirth_interval_s=self._spb.rebirth_interval_s
        )
        started = time.time_ns() // 1_000_000
        state_topic = spb.state_topic(self._spb.host_id)
        session = MqttSession(
            self._config.mqtt,
            self.client_id,
            lambda msg: self._submit(msg, ingest.classify(msg)),
            topics=[(t, SubscribeOptions(qos=1)) for t in spb.subscriptions()],
            will=(state_topic, state_payload(False, started)),
            on_connect=[(state_topic, state_payload(True, started))],
            channel=CHANNEL,
        )
        self._session = session
        self.state = "host"
        log.info("Sparkplug primary host %r: %d births known", self._spb.host_id, len(births))
        try:
            async with session:
                waiters = [asyncio.ensure_future(stop.wait())]
                if lost is not None:
                    waiters.append(asyncio.ensure_future(lost.wait()))
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()
                if session.connected:
                    # A planned stop says so: edge nodes start keeping their data now, not
                    # after the broker's keep-alive notices a silence.
                    info = session.publish(state_topic, state_payload(False, started), retain=True)
                    await asyncio.to_thread(info.wait_for_publish, 5.0)
        finally:
            self._session = None
            self.state = "stopped"
