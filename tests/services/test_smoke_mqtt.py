"""Mosquitto through paho-mqtt 2: QoS 1 delivery, and persistent sessions across broker restarts."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.harness import Mosquitto

pytestmark = pytest.mark.services

WAIT = 10.0  # seconds a peer may take to answer on a loaded CI machine before the test fails


class Peer:
    """A paho client on its network thread, with what it saw in queues the test can wait on."""

    def __init__(self, broker: Mosquitto, client_id: str, *, clean_session: bool = True) -> None:
        self.broker = broker
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        self.connacks: queue.Queue[bool] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.subacks: queue.Queue[int] = queue.Queue()
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_subscribe = lambda _c, _u, mid, _codes, _p: self.subacks.put(mid)

    def _on_connect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        flags: mqtt.ConnectFlags,
        reason: object,
        _props: object,
    ) -> None:
        self.connacks.put(flags.session_present)

    def connect(self) -> bool:
        """Connect and return the CONNACK's session-present flag."""
        url = urlsplit(self.broker.url)
        assert url.hostname is not None
        assert url.port is not None
        self.client.connect(url.hostname, url.port, keepalive=30)
        self.client.loop_start()
        return self.connacks.get(timeout=WAIT)

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert self.subacks.get(timeout=WAIT) == mid

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait for the PUBACK."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published()

    def close(self) -> None:
        """Disconnect cleanly and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers() -> Iterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(
        broker: Mosquitto, client_id: str | None = None, *, clean_session: bool = True
    ) -> Peer:
        peer = Peer(broker, client_id or f"t-{uuid.uuid4().hex[:12]}", clean_session=clean_session)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


def test_qos1_publish_subscribe(mosquitto: Mosquitto, peers: Callable[..., Peer]) -> None:
    topic = f"ms/v1/smoke/{uuid.uuid4().hex[:8]}/m1/telemetry"
    subscriber = peers(mosquitto)
    subscriber.connect()
    subscriber.subscribe(topic)
    publisher = peers(mosquitto)
    publisher.connect()

    publisher.publish(topic, b'{"v":1}')

    msg = subscriber.messages.get(timeout=WAIT)
    assert (msg.topic, msg.payload, msg.qos) == (topic, b'{"v":1}', 1)


def _queue_for_offline_session(broker: Mosquitto, peers: Callable[..., Peer]) -> tuple[str, str]:
    """Leave a persistent QoS 1 session offline with one message queued for it."""
    topic = f"ms/v1/smoke/{uuid.uuid4().hex[:8]}/m1/telemetry"
    hub_id = f"hub-{uuid.uuid4().hex[:8]}"
    hub = peers(broker, hub_id, clean_session=False)
    hub.connect()
    hub.subscribe(topic)
    hub.close()
    publisher = peers(broker)
    publisher.connect()
    publisher.publish(topic, b"queued while the hub was away")
    publisher.close()
    return topic, hub_id


def test_persistent_session_keeps_queued_message_across_restart(
    mosquitto_factory: Callable[..., Mosquitto], peers: Callable[..., Peer]
) -> None:
    broker = mosquitto_factory(persistence=True)
    topic, hub_id = _queue_for_offline_session(broker, peers)

    broker.restart()  # graceful: Mosquitto writes its persistence file on SIGTERM

    hub = peers(broker, hub_id, clean_session=False)
    assert hub.connect() is True  # session present
    msg = hub.messages.get(timeout=WAIT)
    assert (msg.topic, msg.payload, msg.qos) == (topic, b"queued while the hub was away", 1)


def test_restart_without_persistence_forgets_sessions(
    mosquitto_factory: Callable[..., Mosquitto], peers: Callable[..., Peer]
) -> None:
    broker = mosquitto_factory(persistence=False)
    _, hub_id = _queue_for_offline_session(broker, peers)

    broker.restart()

    hub = peers(broker, hub_id, clean_session=False)
    # CONNACK's session-present flag says the broker kept nothing for this client id.
    assert hub.connect() is False
