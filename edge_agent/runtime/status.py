"""The agent status document (pure): what the status topic and `edge-agent status` show."""

from __future__ import annotations

import wire
from edge_agent.buffer import BufferStats
from edge_agent.drivers.health import DeviceHealth
from edge_agent.publish import PublishStats
from edge_agent.runtime.production import Production

__all__ = ["build_status", "status_state"]


def status_state(
    stats: PublishStats, buf: BufferStats, receipt_timeout: float, now: float, receipts: bool
) -> tuple[wire.State, str | None]:
    """Return (state, why): `faulted` with a reason when readings are piling up unconfirmed
    or the buffer's disk is full."""
    if buf.disk_full_since is not None:
        return "faulted", (
            f"disk full for {now - buf.disk_full_since:.0f} s: the buffer cannot grow; it keeps "
            f"sending what it holds and drops its oldest readings to make room "
            f"({sum(buf.dropped.values())} dropped so far). Free space on the buffer's "
            "filesystem; the agent resumes by itself"
        )
    if not stats.connected:
        return "offline", stats.last_error or "not connected to the broker"
    if receipts and buf.in_flight:
        last = stats.last_receipt_at
        silent = None if last is None else now - last
        if silent is None or silent > 2 * receipt_timeout:
            since = "since the agent started" if silent is None else f"for {silent:.0f} s"
            return "faulted", (
                f"no receipt from the hub {since}; {buf.readings} readings stay buffered "
                "(is the hub running and subscribed?)"
            )
    return "online", None


def _device(h: DeviceHealth, p: Production, buf: BufferStats, now: float) -> wire.DeviceReport:
    state = h.state(now)
    return wire.DeviceReport(
        state=state,
        online=state == "online",
        # When the current outage began (epoch ms), and why, in words: while offline only.
        since=(
            int(h.failing_since * 1000)
            if state == "offline" and h.failing_since is not None
            else None
        ),
        why=h.why(now),
        produced=p.produced,
        last_good_ts=p.last_good_ts,
        errors=h.errors,
        last_error=h.last_error or None,
        skipped=p.skipped,
        readings_per_min=round(p.per_minute(now), 1),
        schedule=h.schedule,
        dropped=buf.dropped.get(h.device, 0),
        downsampled=buf.downsampled.get(h.device, 0),
        produced_minutes=list(p.produced_minutes()),
        drop_spans=buf.drop_spans.get(h.device, []),
    )


def build_status(
    *,
    agent_id: str,
    version: str,
    now: float,
    devices: dict[str, DeviceHealth],
    production: dict[str, Production],
    buf: BufferStats,
    backlog: int,
    pub: PublishStats,
    oldest_unsent_ts: int | None = None,
    receipt_timeout: float,
    receipts: bool,
    broker: str,
) -> wire.AgentReport:
    """Everything an operator asks about the agent (`wire.AgentReport`)."""
    now_ms = int(now * 1000)
    state, why = status_state(pub, buf, receipt_timeout, now, receipts)
    drain = pub.backlog.per_second(now)
    live = pub.live.per_second(now)
    return wire.AgentReport(
        agent=agent_id,
        state=state,
        why=why,
        ts=now_ms,
        version=version,
        broker=broker,
        connected=pub.connected,
        devices={
            name: _device(h, production[name], buf, now) for name, h in sorted(devices.items())
        },
        buffer=wire.BufferReport(
            readings=buf.readings,
            nbytes=buf.nbytes,
            oldest_age_ms=None if buf.oldest_ts is None else max(0, now_ms - buf.oldest_ts),
            in_flight=buf.in_flight,
            dropped=sum(buf.dropped.values()),
            downsampled=sum(buf.downsampled.values()),
            rejected=sum(buf.rejected.values()),
            disk_full=buf.disk_full_since is not None,
        ),
        backlog=wire.BacklogReport(
            readings=backlog,
            oldest_unsent_age_ms=(
                None if oldest_unsent_ts is None else max(0, now_ms - oldest_unsent_ts)
            ),
            drain_rate=round(drain, 1),
            eta_s=round(backlog / drain, 1) if drain > 0 else None,
        ),
        publish=wire.PublishReport(
            rate=round(live + drain, 1),
            live_rate=round(live, 1),
            published_readings=pub.published_readings,
            republished_batches=pub.republished_batches,
            receipts=pub.receipts,
            last_error=pub.last_error or None,
        ),
    )
