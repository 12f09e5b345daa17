"""Prometheus metrics of the live stream, on the hub's one registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["LiveMetrics"]


class LiveMetrics:
    """WebSocket clients, messages sent, and readings skipped for slow clients."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.clients = Gauge(
            "millstream_ws_clients",
            "Connected, authenticated WebSocket clients.",
            registry=registry,
        )
        self.messages = Counter(
            "millstream_ws_messages",
            "Messages sent to WebSocket clients, by type.",
            ["type"],
            registry=registry,
        )
        self.coalesced = Counter(
            "millstream_ws_coalesced_readings",
            "Readings a slow WebSocket client skipped (it got the newest values instead).",
            registry=registry,
        )
        self.refused = Counter(
            "millstream_ws_refused",
            "WebSocket connections closed for bad credentials.",
            registry=registry,
        )
