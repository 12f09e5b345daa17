"""The OpenTelemetry SDK behind `millstream_common.tracing` (imported only when tracing is on)."""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from millstream_common.tracing import TraceContext, sampled_by_ratio

__all__ = ["SdkTracer"]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class SdkTracer:
    """Builds finished spans and hands them to the SDK's batch processor (export off-thread)."""

    def __init__(
        self, service: str, ratio: float, endpoint: str | None, exporter: SpanExporter | None
    ) -> None:
        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override and add, as the SDK defines.
        self._resource = Resource.create({"service.name": service})
        self._scope = InstrumentationScope("millstream")
        # endpoint None: the exporter reads the OTEL_EXPORTER_OTLP_* variables itself; the
        # processor its OTEL_BSP_* ones (queue size, delay).
        self._processor = BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=endpoint))
        self.ratio = ratio

    def sampled(self, trace_id: int) -> bool:
        """Whether a trace that starts here is kept."""
        return sampled_by_ratio(trace_id, self.ratio)

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
        span = ReadableSpan(
            name,
            context=SpanContext(ctx.trace_id, ctx.span_id, is_remote=False, trace_flags=_SAMPLED),
            parent=None
            if parent is None
            else SpanContext(parent.trace_id, parent.span_id, is_remote=True, trace_flags=_SAMPLED),
            resource=self._resource,
            attributes=attributes,
            kind=SpanKind[kind.upper()],
            status=Status(StatusCode.ERROR, error) if error else Status(StatusCode.UNSET),
            start_time=start_ns,
            end_time=max(start_ns, end_ns),
            instrumentation_scope=self._scope,
        )
        self._processor.on_end(span)

    def close(self) -> None:
        """Export what is queued and stop the exporter (at most a few seconds)."""
        self._processor.force_flush(3000)
        self._processor.shutdown()  # type: ignore[no-untyped-call]
