"""Tracing: one batch of readings followed from the agent through the hub into Kafka.

Off by default, and then nothing of OpenTelemetry is even imported (`open_tracer` returns None
and every caller checks for None). On (a `tracing:` config section, the standard `OTEL_*`
variables for the exporter and the resource), spans go to an OTLP/HTTP receiver through the
official SDK's batch processor and exporter.

Spans are recorded after the fact, from timestamps the pipeline keeps anyway, not opened and
closed around the work: a hub transaction commits hundreds of batches at once, each its own
trace, and an agent batch lives from a poll to a receipt that may come after a restart. So a
span here is built whole (`Tracer.emit`) with ids the pipeline chose. That is also what lets an
agent put a batch's context into the payload it stores before it sends it (the same bytes when
it sends it again), and what lets the hub decide after the fact to keep the trace of a batch it
dead-lettered whatever the sampling ratio said.

Propagation is W3C Trace Context (`traceparent`): in MQTT v5 user properties, in a telemetry
payload's optional `trace` field (MQTT 3.1.1 publishers, such as the agent), in the Kafka outbox
and in Kafka record headers (docs/tracing.md).
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # the SDK is imported only when tracing is on
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "TraceContext",
    "Tracer",
    "TracingConfig",
    "new_span_id",
    "new_trace_id",
    "open_tracer",
    "sampled_by_ratio",
]

# W3C Trace Context §3.2: version 00, 32 hex trace id, 16 hex parent id, 2 hex flags.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_MAX_ID = (1 << 64) - 1


class TracingConfig(BaseModel):
    """The `tracing:` section of the agent's and the hub's config (docs/tracing.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    # OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces. None: the standard
    # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4318.
    endpoint: str | None = Field(default=None, pattern=r"^https?://\S+$")
    # Share of new traces kept. A batch that came with a context follows its sender's decision;
    # republished and dead-lettered batches are always kept. OTEL_TRACES_SAMPLER_ARG overrides.
    ratio: float = Field(default=0.01, ge=0.0, le=1.0)


@dataclass(frozen=True, slots=True)
class TraceContext:
    """A span's identity as it crosses a process boundary (W3C `traceparent`)."""

    trace_id: int
    span_id: int
    sampled: bool

    @property
    def traceparent(self) -> str:
        """The `traceparent` header value."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{'01' if self.sampled else '00'}"

    def child(self, span_id: int | None = None) -> TraceContext:
        """The context of a new span under this one (same trace, same decision)."""
        return TraceContext(self.trace_id, span_id or new_span_id(), self.sampled)

    @classmethod
    def parse(cls, value: str | bytes | None) -> TraceContext | None:
        """A `traceparent`, or None when absent or invalid (W3C §3.2.2: a receiver ignores an
        invalid one and starts a new trace; it never refuses the message for it)."""
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if not value:
            return None
        value = value.strip()
        m = _TRACEPARENT.match(value)
        # Version ff is invalid; a later version may append fields, version 00 may not.
        if m is None or m[1] == "ff" or (m[1] == "00" and len(value) != 55):
            return None
        trace_id, span_id = int(m[2], 16), int(m[3], 16)
        if trace_id == 0 or span_id == 0:
            return None
        return cls(trace_id, span_id, bool(int(m[4], 16) & 1))


def new_trace_id() -> int:
    """A random non-zero 128-bit trace id."""
    return random.getrandbits(128) or 1


def new_span_id() -> int:
    """A random non-zero 64-bit span id."""
    return random.getrandbits(64) or 1


def sampled_by_ratio(trace_id: int, ratio: float) -> bool:
    """The SDK's TraceIdRatioBased rule (its lower 64 bits against the ratio), so every process
    of a trace that starts without a decision decides it the same way."""
    return (trace_id & _MAX_ID) < round(ratio * (_MAX_ID + 1))


class Tracer(Protocol):
    """Records finished spans (millstream_common/otel.py, the SDK behind it)."""

    ratio: float

    def sampled(self, trace_id: int) -> bool:
        """Whether a trace that starts here is kept."""

    def emit(
        self,
        name: str,
        ctx: TraceContext,
        parent: TraceContext | None,
        *,
        start_ns: int,
        end_ns: int,
        attributes: dict[str, Any] | None = None,
        kind: str = "internal",
        error: str | None = None,
    ) -> None:
        """Record one finished span `ctx` (child of `parent`, None for a trace's root)."""

    def close(self) -> None:
        """Export what is queued and stop the exporter (at most a few seconds)."""


def _ratio(cfg: TracingConfig) -> float:
    raw = os.environ.get("OTEL_TRACES_SAMPLER_ARG")
    if raw is None:
        return cfg.ratio
    try:
        return min(1.0, max(0.0, float(raw)))
    except ValueError:
        return cfg.ratio


def open_tracer(
    service: str, cfg: TracingConfig, exporter: SpanExporter | None = None
) -> Tracer | None:
    """The tracer for this process, or None when tracing is off (config, or OTEL_SDK_DISABLED)."""
    if not cfg.enabled or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    # Here, not at the top: with tracing off the SDK is never loaded.
    from millstream_common.otel import SdkTracer  # noqa: PLC0415

    return SdkTracer(service, _ratio(cfg), cfg.endpoint, exporter)
