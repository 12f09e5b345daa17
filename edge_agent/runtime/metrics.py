"""Prometheus metrics of the agent, fed from its status report, served on 127.0.0.1 only."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, start_http_server

import wire

__all__ = ["AgentMetrics"]


class AgentMetrics:
    """Gauges mirroring the agent status; `update(status)` is the `on_status` callback."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connected = Gauge(
            "millstream_agent_connected", "1 when connected to the broker", registry=r
        )
        self.buffer_readings = Gauge(
            "millstream_agent_buffer_readings", "Readings buffered", registry=r
        )
        self.buffer_bytes = Gauge("millstream_agent_buffer_bytes", "Bytes buffered", registry=r)
        self.disk_full = Gauge(
            "millstream_agent_buffer_disk_full",
            "1 while the buffer's disk is full (it drops its oldest readings to make room)",
            registry=r,
        )
        self.oldest_age = Gauge(
            "millstream_agent_buffer_oldest_age_seconds",
            "Age of the oldest buffered reading",
            registry=r,
        )
        self.backlog = Gauge(
            "millstream_agent_backlog_readings", "Readings never sent yet", registry=r
        )
        self.publish_rate = Gauge(
            "millstream_agent_publish_rate", "Readings published per second", registry=r
        )
        self.published = Gauge(
            "millstream_agent_published_readings", "Readings published since start", registry=r
        )
        labels = ["device"]
        self.dropped = Gauge(
            "millstream_agent_dropped_readings",
            "Readings dropped by buffer bounds",
            labels,
            registry=r,
        )
        self.errors = Gauge(
            "millstream_agent_device_errors",
            "Failed polls and connection attempts of the device since the agent started",
            labels,
            registry=r,
        )
        self.online = Gauge(
            "millstream_agent_device_online",
            "1 while the device answers, 0 once its polls have failed for longer than its "
            "offline threshold (docs/devices.md); 0 too while it has not answered yet",
            labels,
            registry=r,
        )
        self.per_min = Gauge(
            "millstream_agent_readings_per_minute",
            "Readings produced per minute",
            labels,
            registry=r,
        )
        self.schedule = Gauge(
            "millstream_agent_poll_schedule_ratio",
            "Share of the scheduled polls done over the last 10 s (polled protocols; below 0.9 "
            "the agent warns: more is configured than it or the device keeps up with)",
            labels,
            registry=r,
        )

    def serve(self, port: int) -> None:
        """Serve /metrics on 127.0.0.1:`port` (a background thread)."""
        start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def update(self, report: wire.AgentReport) -> None:
        """Copy one status report into the gauges."""
        buf = report.buffer
        self.connected.set(1 if report.connected else 0)
        self.buffer_readings.set(buf.readings)
        self.buffer_bytes.set(buf.nbytes)
        self.disk_full.set(1 if buf.disk_full else 0)
        self.oldest_age.set((buf.oldest_age_ms or 0) / 1000)
        self.backlog.set(report.backlog.readings)
        self.publish_rate.set(report.publish.rate)
        self.published.set(report.publish.published_readings)
        for name, dev in report.devices.items():
            self.dropped.labels(name).set(dev.dropped)
            self.errors.labels(name).set(dev.errors)
            self.online.labels(name).set(1 if dev.online else 0)
            self.per_min.labels(name).set(dev.readings_per_min)
            if dev.schedule is not None:
                self.schedule.labels(name).set(dev.schedule)
