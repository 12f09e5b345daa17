"""The hub's MQTT session: paho-mqtt 2, MQTT v5, persistent session, manual PUBACK.

paho runs its network loop on its own thread. Messages cross into asyncio with
`loop.call_soon_threadsafe`; acknowledgements go back through `ack()`, which only acks packet
ids of the connection that delivered them (a packet id from a previous connection could name
a different, uncommitted message on the new one — the broker redelivers the old ones anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

import wire
from hub.config import MqttConfig
from hub.ingest.message import Incoming

__all__ = ["MqttSession", "subscriptions"]

log = logging.getLogger(__name__)


def subscriptions(share_group: str, *, shared: bool = True) -> list[tuple[str, SubscribeOptions]]:
    """Topic filters: telemetry, machine events and command results shared across hub
    instances (one of them stores each), status and meta seen by every one."""
    if not shared:
        # MQTT 3.1.1 has neither shared subscriptions nor retain handling options.
        plain = SubscribeOptions(qos=1)
        return [
            (wire.TELEMETRY_FILTER, plain),
            (wire.EVENTS_FILTER, plain),
            (wire.MACHINE_STATUS_FILTER, plain),
            (wire.MACHINE_META_FILTER, plain),
            (wire.AGENT_STATUS_FILTER, plain),
            (wire.COMMAND_RESULT_FILTER, plain),
        ]
    # Retained status is only wanted once per new subscription, not on every reconnect.
    status = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
    return [
        (f"$share/{share_group}/{wire.TELEMETRY_FILTER}", SubscribeOptions(qos=1)),
        (f"$share/{share_group}/{wire.EVENTS_FILTER}", SubscribeOptions(qos=1)),
        (wire.MACHINE_STATUS_FILTER, status),
        (wire.MACHINE_META_FILTER, status),
        (wire.AGENT_STATUS_FILTER, status),
        (f"$share/{share_group}/{wire.COMMAND_RESULT_FILTER}", SubscribeOptions(qos=1)),
    ]


def _traceparent(message: paho.MQTTMessage) -> str | None:
    """The W3C `traceparent` user property of an MQTT v5 message (docs/tracing.md)."""
    props = getattr(message, "properties", None)
    for key, value in getattr(props, "UserProperty", None) or ():
        if key == "traceparent":
            return str(value)
    return None


class MqttSession:
    """Async context manager owning the paho client and its network thread."""

    def __init__(
        self,
        config: MqttConfig,
        client_id: str,
        deliver: Callable[[Incoming], None],
        *,
        subscribe: bool = True,
        persistent: bool = True,
        topics: list[tuple[str, SubscribeOptions]] | None = None,
        will: tuple[str, bytes] | None = None,
        on_connect: Sequence[tuple[str, bytes]] = (),
        channel: str = "",
    ) -> None:
        """`persistent=False` (a CLI that only publishes): no session is kept on the broker.
        `topics` replaces the hub's own subscriptions (the Sparkplug host's session); `will`
        is a retained last will and `on_connect` retained messages published on every
        (re)connect (its STATE birth and death certificates); `channel` tags what it receives."""
        self._topics = topics
        self._on_connect_publish = tuple(on_connect)
        self._channel = channel
        self._config = config
        self._persistent = persistent
        self._client_id = client_id
        self._deliver = deliver
        self._subscribe = subscribe
        self._lock = threading.Lock()
        self._generation = 0
        self._connected = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._up = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._unsubscribed = asyncio.Event()
        self._retiring = False
        self._last_message = 0.0  # time.monotonic() of the newest message received
        self._v5 = config.protocol == "mqttv5"
        if self._v5:
            self._client = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=MQTTProtocolVersion.MQTTv5,
                manual_ack=True,
            )
        else:
            # MQTT 3.1.1 keeps the session (and our unacknowledged messages) via clean_session.
            self._client = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                clean_session=not persistent,
                protocol=MQTTProtocolVersion.MQTTv311,
                manual_ack=True,
            )
        if will is not None:
            self._client.will_set(will[0], will[1], qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_unsubscribe = self._on_unsubscribe
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        if config.username:
            self._client.username_pw_set(config.username, config.password())
        if config.use_tls:
            tls = config.tls
            self._client.tls_set(
                ca_certs=str(tls.ca) if tls and tls.ca else None,
                certfile=str(tls.cert) if tls and tls.cert else None,
                keyfile=str(tls.key) if tls and tls.key else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        return self._connected

    @property
    def subscribed(self) -> bool:
        """True once the broker acknowledged this connection's subscriptions."""
        return self._subscribed.is_set()

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        # connect_async never blocks on DNS/TCP; paho's thread connects and reconnects.
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self._config.session_expiry_s if self._persistent else 0
            props.ReceiveMaximum = self._config.receive_maximum
            self._client.connect_async(
                self._config.host,
                self._config.port,
                keepalive=self._config.keepalive_s,
                clean_start=not self._persistent,
                properties=props,
            )
        else:
            self._client.connect_async(
                self._config.host, self._config.port, keepalive=self._config.keepalive_s
            )
        self._client.loop_start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._generation += 1  # nothing acknowledged after this point
        if self._retiring:
            # Session Expiry Interval 0 on DISCONNECT (MQTT 5 §3.14.2.2.2): the broker ends the
            # session now, so it takes no share of the telemetry while nobody reads it.
            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
            self._client.disconnect(properties=props)
        else:
            # A normal DISCONNECT keeps the session (expiry is set): unacked messages stay queued.
            self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self._connected = False

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until the broker accepted the connection (raises TimeoutError)."""
        async with asyncio.timeout(timeout_s):
            await self._up.wait()

    async def wait_subscribed(self, timeout_s: float) -> None:
        """Wait until the broker acknowledged our subscriptions (raises TimeoutError)."""
        async with asyncio.timeout(timeout_s):
            await self._subscribed.wait()

    async def retire(self, quiet_s: float = 1.0, timeout_s: float = 15.0) -> None:
        """Leave the share group for good: unsubscribe, let what the broker already sent arrive
        (until `quiet_s` passes without a message), and end the session on disconnect.

        For a planned scale-down (`mqtt.retire_on_stop`): a stopped instance whose session
        lives on would have the broker queue its share of the telemetry for it until expiry.
        """
        if not self._v5 or not self._connected:
            return
        self._unsubscribed.clear()
        self._client.unsubscribe(
            [
                topic
                for topic, _ in self._topics or subscriptions(self._config.share_group, shared=True)
            ]
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._unsubscribed.wait()
                # A quiet period, seen through a timestamp the network thread writes.
                while time.monotonic() - self._last_message < quiet_s:  # noqa: ASYNC110
                    await asyncio.sleep(quiet_s / 4)
        self._retiring = True

    def ack(self, messages: Sequence[Incoming]) -> int:
        """Send PUBACK for committed messages, in order; returns how many were acknowledged."""
        sent = 0
        with self._lock:
            for msg in messages:
                if (
                    msg.qos > 0
                    and msg.generation == self._generation
                    and msg.channel == self._channel
                ):
                    self._client.ack(msg.mid, msg.qos)
                    sent += 1
        return sent

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, *, retain: bool = False
    ) -> paho.MQTTMessageInfo:
        """Queue a PUBLISH (paho's publish is thread-safe and does not block); the returned
        info tells when the broker has it (`is_published()`, PUBACK for QoS 1)."""
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    # --- paho thread ---------------------------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("broker refused connection: %s", reason)
            return
        with self._lock:
            self._generation += 1
        self._connected = True
        self._threadsafe(self._up.set)
        log.info(
            "connected to broker %s:%s as %s (session present: %s)",
            self._config.host,
            self._config.port,
            self._client_id,
            flags.session_present,
        )
        if self._subscribe:
            subs = self._topics or subscriptions(self._config.share_group, shared=self._v5)
            if self._v5:
                client.subscribe(subs)
            else:
                # paho takes (topic, qos) pairs for MQTT 3.1.1: options are a v5 thing.
                client.subscribe([(topic, opts.QoS) for topic, opts in subs])
        for topic, payload in self._on_connect_publish:
            client.publish(topic, payload, qos=1, retain=True)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            log.error("broker refused subscriptions: %s", failed)
            return
        self._threadsafe(self._subscribed.set)

    def _on_unsubscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._threadsafe(self._unsubscribed.set)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self._generation += 1
        if self._connected:
            log.warning("lost broker connection: %s; reconnecting", reason)
        self._connected = False
        self._threadsafe(self._up.clear)

    def _threadsafe(self, fn: Callable[[], object]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn)
            except RuntimeError:  # loop closed between the check and the call
                return

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._last_message = time.monotonic()
        try:
            topic = message.topic
        except UnicodeDecodeError:
            # MQTT requires UTF-8 topics; keep the message so it can be dead-lettered and acked.
            topic = repr(message._topic)
        now_ns = time.time_ns()
        msg = Incoming(
            topic=topic,
            payload=bytes(message.payload),
            qos=message.qos,
            mid=message.mid,
            received_at=now_ns // 1_000_000,
            generation=self._generation,
            channel=self._channel,
            trace=_traceparent(message) if self._v5 else None,
            received_ns=now_ns,
        )
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # shutting down: not acked, so the broker redelivers it
        try:
            loop.call_soon_threadsafe(self._deliver, msg)
        except RuntimeError:
            return
