"""A real OTLP/HTTP trace receiver: what an OpenTelemetry Collector's `otlp` receiver takes
(`POST /v1/traces`, an `ExportTraceServiceRequest` in protobuf), decoded into spans.

otlp = OtlpReceiver()           # listening on 127.0.0.1, a free port; otlp.url
otlp.spans                      # every span received, in arrival order
otlp.trace(trace_id)            # the spans of one trace
otlp.close()
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["OtlpReceiver", "ReceivedSpan", "span_tree"]

_STATUS_ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver decoded it (ids in lowercase hex, times in ns)."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a trace's root
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    error: str | None


def _value(v: AnyValue) -> Any:
    field = v.WhichOneof("value")
    return None if field is None else getattr(v, field)


class OtlpReceiver:
    """See module docstring."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                outer._take(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _take(self, request: ExportTraceServiceRequest) -> None:
        got = []
        for rs in request.resource_spans:
            attrs = {a.key: _value(a.value) for a in rs.resource.attributes}
            service = str(attrs.get("service.name", ""))
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append(
                        ReceivedSpan(
                            service=service,
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            kind=s.kind,
                            start_ns=s.start_time_unix_nano,
                            end_ns=s.end_time_unix_nano,
                            attributes={a.key: _value(a.value) for a in s.attributes},
                            error=s.status.message if s.status.code == _STATUS_ERROR else None,
                        )
                    )
        with self._lock:
            self.requests += 1
            self.spans.extend(got)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans of one trace received so far."""
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def span_tree(spans: list[ReceivedSpan]) -> str:
    """The spans as an indented tree with offsets from the root (docs/tracing.md shows one)."""
    by_parent: dict[str, list[ReceivedSpan]] = {}
    for s in spans:
        by_parent.setdefault(s.parent_id, []).append(s)
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_id not in ids]
    t0 = min((s.start_ns for s in spans), default=0)
    lines: list[str] = []

    def walk(span: ReceivedSpan, depth: int) -> None:
        lines.append(
            f"{'  ' * depth}{span.name:<{28 - 2 * depth}} {span.service:<17}"
            f" +{(span.start_ns - t0) / 1e6:8.1f} ms  {(span.end_ns - span.start_ns) / 1e6:8.1f} ms"
        )
        for child in sorted(by_parent.get(span.span_id, []), key=lambda s: s.start_ns):
            walk(child, depth + 1)

    for root in sorted(roots, key=lambda s: s.start_ns):
        walk(root, 0)
    return "\n".join(lines)
