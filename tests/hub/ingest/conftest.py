"""Fixtures for ingest tests (helpers live in hubtest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hubtest import MqttTestClient


@pytest.fixture
def mqtt_client(mosquitto: Any) -> Iterator[MqttTestClient]:
    client = MqttTestClient(mosquitto.host, mosquitto.port)
    yield client
    client.close()
