"""Fixtures the alert tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.webhook import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A real HTTP server receiving the webhooks."""
    r = WebhookReceiver()
    yield r
    r.close()
