"""The agent's full status report: what `edge-agent status` shows, its status file holds, its
Prometheus gauges mirror, and what its retained wire status (`AgentStatusBody`) is cut from.

One typed model instead of a dict read by string keys in four places. Reading a report is
lenient (fields added later have defaults), so `edge-agent status` of a newer agent reads the
file an older one left.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from wire.models import DeviceState, DeviceStatus, State
from wire.status import encode_agent_status

__all__ = ["AgentReport", "BacklogReport", "BufferReport", "DeviceReport", "PublishReport"]


class _Report(BaseModel):
    # populate_by_name: `BufferReport(nbytes=…)` in code, "bytes" in the file.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class DeviceReport(_Report):
    """One device as the agent sees it (docs/devices.md)."""

    state: DeviceState = "connecting"
    online: bool = False
    since: int | None = None  # while offline: when its polls began to fail (epoch ms)
    why: str | None = None  # while offline: the reason in words
    produced: int = 0
    last_good_ts: int | None = None
    errors: int = 0
    last_error: str | None = None
    skipped: int = 0
    readings_per_min: float = 0.0
    # Share of the scheduled polls done (polled protocols; None until measured).
    schedule: float | None = None
    dropped: int = 0
    downsampled: int = 0
    produced_minutes: list[tuple[int, int]] = Field(default_factory=list)
    # (first ts, last ts, readings) the buffer dropped, newest spans since the agent started.
    drop_spans: list[tuple[int, int, int]] = Field(default_factory=list)


class BufferReport(_Report):
    """The local store-and-forward buffer."""

    readings: int = 0
    nbytes: int = Field(0, alias="bytes")
    oldest_age_ms: int | None = None
    in_flight: int = 0
    dropped: int = 0
    downsampled: int = 0
    rejected: int = 0
    disk_full: bool = False


class BacklogReport(_Report):
    """Readings never sent yet, and how fast they drain."""

    readings: int = 0
    oldest_unsent_age_ms: int | None = None
    drain_rate: float = 0.0
    eta_s: float | None = None


class PublishReport(_Report):
    """The MQTT publisher."""

    rate: float = 0.0
    live_rate: float = 0.0
    published_readings: int = 0
    republished_batches: int = 0
    receipts: int = 0
    last_error: str | None = None


class AgentReport(_Report):
    """Everything an operator asks about an agent, at `ts` (epoch ms)."""

    agent: str
    state: State
    why: str | None = None
    ts: int
    version: str
    broker: str
    connected: bool
    devices: dict[str, DeviceReport] = Field(default_factory=dict)
    buffer: BufferReport = Field(default_factory=BufferReport)
    backlog: BacklogReport = Field(default_factory=BacklogReport)
    publish: PublishReport = Field(default_factory=PublishReport)

    def to_json(self) -> dict[str, object]:
        """The report as the status file holds it."""
        return self.model_dump(mode="json", by_alias=True)

    def encode_wire(self, site: str | None, line: str | None) -> bytes:
        """The retained `ms/v1/agents/{id}/status` payload cut from this report."""
        return encode_agent_status(
            "faulted" if self.state == "faulted" else "online",
            self.ts,
            version=self.version,
            site=site,
            line=line,
            buffer_depth=self.buffer.readings,
            buffer_age_ms=self.buffer.oldest_age_ms,
            dropped=self.buffer.dropped,
            poll_errors={name: d.errors for name, d in self.devices.items()},
            publish_rate=self.publish.rate,
            buffer_bytes=self.buffer.nbytes,
            backlog=self.backlog.readings,
            backlog_age_ms=self.backlog.oldest_unsent_age_ms,
            drain_rate=self.backlog.drain_rate,
            eta_s=self.backlog.eta_s,
            devices={
                name: DeviceStatus(
                    online=d.online,
                    state=d.state,
                    since=d.since,
                    why=d.why,
                    last_good_ts=d.last_good_ts,
                    errors=d.errors,
                    dropped=d.dropped,
                    produced=tuple(d.produced_minutes),
                    drops=tuple(d.drop_spans),
                )
                for name, d in self.devices.items()
            },
        )
