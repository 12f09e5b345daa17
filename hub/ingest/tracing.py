"""A batch's trace through the hub: validate → commit → receipt, outbox → Kafka, live fan-out.

The pipeline keeps a few timestamps per message while tracing is on (`Spans`); once the
message's transaction is acknowledged its spans are emitted whole (millstream_common/tracing.py
says why after the fact). A message that came with a context (MQTT v5 `traceparent` user
property, or the payload's `trace` field) continues its sender's trace and follows its sampling
decision; one without starts a trace here, kept at the configured ratio. A dead-lettered message
is always kept: the broken is what one traces.

The outbox row of a traced batch carries its `hub.outbox` span's context, so the relay (another
process, maybe another host) continues the trace when it produces to Kafka, and writes it into
the records' headers for whoever consumes them.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from hub.ingest.message import Incoming
from hub.storage import DeadLetter, TelemetryBatch
from millstream_common.tracing import TraceContext, Tracer, new_span_id, new_trace_id

__all__ = ["IngestTracer", "Spans"]

# A dead letter's payload failed validation, so its `trace` field is looked for in its raw head.
_TRACE_FIELD = re.compile(rb'"trace"\s*:\s*"([^"]{1,128})"')
_MAX_RECEIPTS = 50_000  # waiting for their receipt to go out; the oldest are forgotten


@dataclass(slots=True)
class Spans:
    """One telemetry message's trace on the hub while it goes through the pipeline."""

    parent: TraceContext | None  # the sender's publish span
    ingest: TraceContext
    outbox: TraceContext
    commit_id: int  # the `hub.commit` span's (an exemplar of the commit latency names it)
    validated_ns: int = 0
    live: tuple[int, int] | None = None
    commit: tuple[int, int] | None = None


class IngestTracer:
    """Decides, builds and emits the hub's spans of each message."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        # (src, seq) → (its ingest span, when it was acknowledged), until its receipt goes out.
        self._receipts: dict[tuple[str, int], tuple[TraceContext, int]] = {}

    def start(self, batch: TelemetryBatch) -> Spans:
        """The spans of a validated batch, its ids chosen now (the outbox stores one)."""
        parent = TraceContext.parse(batch.trace)
        if parent is not None:
            ingest = parent.child()
        else:
            trace_id = new_trace_id()
            ingest = TraceContext(trace_id, new_span_id(), self.tracer.sampled(trace_id))
        return Spans(parent, ingest, ingest.child(), new_span_id())

    def acknowledged(self, msg: Incoming, batch: TelemetryBatch, spans: Spans, now: int) -> None:
        """Emit the spans of a committed, acknowledged batch (if its trace is kept)."""
        if not spans.ingest.sampled:
            return
        t, ingest = self.tracer, spans.ingest
        received = msg.received_ns or now
        attrs = {
            "millstream.site": batch.site,
            "millstream.line": batch.line,
            "millstream.machine": batch.machine,
            "millstream.src": batch.src,
            "millstream.seq": batch.seq,
            "millstream.readings": len(batch.readings),
            "messaging.destination.name": msg.topic,
        }
        t.emit(
            "hub.ingest",
            ingest,
            spans.parent,
            start_ns=received,
            end_ns=now,
            attributes=attrs,
            kind="consumer",
        )
        validated = spans.validated_ns or received
        t.emit("hub.validate", ingest.child(), ingest, start_ns=received, end_ns=validated)
        if spans.live is not None:
            t.emit("hub.live", ingest.child(), ingest, start_ns=spans.live[0], end_ns=spans.live[1])
        if spans.commit is not None:
            commit = ingest.child(spans.commit_id)
            start, end = spans.commit
            t.emit("hub.commit", commit, ingest, start_ns=start, end_ns=end)
            t.emit("hub.outbox", spans.outbox, commit, start_ns=start, end_ns=end)
        if batch.receipt:
            self._receipts[batch.src, batch.seq] = (ingest, now)
            while len(self._receipts) > _MAX_RECEIPTS:
                del self._receipts[next(iter(self._receipts))]

    @staticmethod
    def exemplar(spans: Spans | None) -> dict[str, str] | None:
        """The commit-latency exemplar naming a kept trace's `hub.commit` span, if `spans` is."""
        if spans is None or not spans.ingest.sampled:
            return None
        return {"trace_id": f"{spans.ingest.trace_id:032x}", "span_id": f"{spans.commit_id:016x}"}

    def dead_lettered(self, msg: Incoming, letter: DeadLetter, now: int) -> None:
        """Emit the trace of a dead-lettered message, whatever the ratio."""
        parent = TraceContext.parse(msg.trace)
        if parent is None:
            m = _TRACE_FIELD.search(msg.payload[:512])
            parent = TraceContext.parse(m[1]) if m else None
        ingest = (
            TraceContext(parent.trace_id, new_span_id(), True)
            if parent is not None
            else TraceContext(new_trace_id(), new_span_id(), True)
        )
        received = msg.received_ns or now
        attrs = {
            "messaging.destination.name": msg.topic,
            "millstream.dead_letter.reason": letter.reason,
            "millstream.src": letter.src or "",
        }
        self.tracer.emit(
            "hub.ingest",
            ingest,
            parent,
            start_ns=received,
            end_ns=now,
            attributes=attrs,
            kind="consumer",
            error=letter.message[:200],
        )
        self.tracer.emit(
            "hub.dead_letter",
            ingest.child(),
            ingest,
            start_ns=received,
            end_ns=now,
            attributes={"millstream.dead_letter.reason": letter.reason},
            error=letter.message[:200],
        )

    def receipts_sent(self, src: str, seqs: list[int]) -> None:
        """The receipt naming `seqs` of `src` went out: their `hub.receipt` spans end."""
        if not self._receipts:
            return
        now = time.time_ns()
        for seq in seqs:
            got = self._receipts.pop((src, seq), None)
            if got is not None:
                ingest, acked = got
                self.tracer.emit(
                    "hub.receipt",
                    ingest.child(),
                    ingest,
                    start_ns=acked,
                    end_ns=now,
                    attributes={"millstream.seq": seq},
                    kind="producer",
                )
