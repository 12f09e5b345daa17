"""Tracing's pure parts (millstream_common/tracing.py) and the agent's batch trace ids: W3C
`traceparent` parsing, the sampling rule against the SDK's, the payload's `trace` field as the
hub reads it, the same bytes for a batch sent again, and no SDK loaded when tracing is off."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

import wire
from edge_agent.buffer import BufferDB, Reading
from edge_agent.buffer.readings import wire_encoder
from edge_agent.publish.tracing import BatchTracer
from millstream_common.tracing import (
    TraceContext,
    TracingConfig,
    open_tracer,
    sampled_by_ratio,
)

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_traceparent_round_trips_and_invalid_ones_are_ignored() -> None:
    ctx = TraceContext.parse(VALID)
    assert ctx == TraceContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, True)
    assert ctx.traceparent == VALID
    assert TraceContext.parse(VALID.encode()) == ctx
    assert TraceContext.parse(VALID[:-2] + "00") == TraceContext(ctx.trace_id, ctx.span_id, False)
    # A later version may carry more fields; this one's prefix is still understood.
    assert TraceContext.parse("01" + VALID[2:] + "-extra") is not None
    for bad in (
        None,
        "",
        "ff" + VALID[2:],  # version ff is invalid
        VALID + "-extra",  # version 00 has exactly four fields
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",  # all-zero span id
        VALID.upper(),
        "00-4bf92f35-00f067aa0ba902b7-01",
        "garbage",
    ):
        assert TraceContext.parse(bad) is None, bad


def test_child_keeps_the_trace_and_the_decision() -> None:
    ctx = TraceContext.parse(VALID)
    assert ctx is not None
    child = ctx.child()
    assert (child.trace_id, child.sampled) == (ctx.trace_id, ctx.sampled)
    assert child.span_id != ctx.span_id


@given(st.integers(1, (1 << 128) - 1), st.sampled_from([0.0, 0.01, 0.25, 0.5, 0.999, 1.0]))
def test_sampling_decides_as_the_sdk_does(trace_id: int, ratio: float) -> None:
    sdk = TraceIdRatioBased(ratio).should_sample(None, trace_id, "x").decision
    assert sampled_by_ratio(trace_id, ratio) == (sdk == Decision.RECORD_AND_SAMPLE)


def _loaded(imports: str) -> list[str]:
    code = (
        f"import sys, {imports}\n"
        "from millstream_common.tracing import TracingConfig, open_tracer\n"
        "assert open_tracer('x', TracingConfig()) is None\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('opentelemetry'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_off_by_default_and_then_no_sdk_is_loaded() -> None:
    assert open_tracer("x", TracingConfig()) is None
    assert _loaded("edge_agent.runtime.main") == []
    # The hub's Redis client loads OpenTelemetry's API and metrics SDK for its own metrics when
    # they are installed; the tracing SDK and the exporter are ours, and stay unloaded.
    hub = _loaded("hub.runtime, hub.cli.kafka")
    ours = ("opentelemetry.sdk.trace", "opentelemetry.exporter")
    assert not [m for m in hub if m.startswith(ours)], hub


class _Spans:
    """A tracer that keeps the spans it is given."""

    ratio = 1.0

    def __init__(self, ratio: float = 1.0) -> None:
        self.ratio = ratio
        self.spans: list[tuple[str, TraceContext, TraceContext | None]] = []

    def sampled(self, trace_id: int) -> bool:
        return sampled_by_ratio(trace_id, self.ratio)

    def emit(self, name: str, ctx: TraceContext, parent: TraceContext | None, **_: object) -> None:
        self.spans.append((name, ctx, parent))

    def close(self) -> None:
        return


def test_a_batch_carries_its_trace_and_the_same_bytes_when_sent_again(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    tracer = _Spans(ratio=0.0)  # kept only because it had to be sent again
    db = BufferDB(tmp_path / "b.db", now_ms=now, encoder=wire_encoder("pc-1"))
    db.tracing = BatchTracer(tracer, "pc-1")
    ref = db.append("press", [Reading("t", now, 1.5), Reading("u", now, 2)])
    assert ref is not None
    db.commit()
    db.tracing.committed([ref], time.time_ns(), time.time_ns())
    (first,) = db.claim_ids([ref], 1000, now)
    db.commit()
    # The hub reads the field (and would refuse the batch if the envelope were wrong).
    parsed = wire.parse_telemetry("ms/v1/s/l/press/telemetry", first.payload, now)
    ctx = TraceContext.parse(parsed.trace)
    assert ctx is not None
    assert not ctx.sampled  # ratio 0
    (again,) = db.due(now + 60_000, 1000, 10)
    assert (again.payload, again.digest) == (first.payload, first.digest)
    db.tracing.confirmed([first.seq])
    names = {name: (c, p) for name, c, p in tracer.spans}
    assert set(names) == {
        "agent.batch",
        "agent.poll",
        "agent.chunk_commit",
        "agent.publish",
        "agent.receipt",
    }
    root = names["agent.batch"][0]
    assert names["agent.batch"][1] is None
    assert all(p == root for n, (_c, p) in names.items() if n != "agent.batch")
    # The hub's spans hang under the publish span the payload names.
    assert names["agent.publish"][0].span_id == ctx.span_id
    assert root.trace_id == ctx.trace_id
    db.close()


def test_a_batch_confirmed_on_first_send_follows_the_ratio(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    tracer = _Spans(ratio=0.0)
    db = BufferDB(tmp_path / "b.db", now_ms=now, encoder=wire_encoder("pc-1"))
    db.tracing = BatchTracer(tracer, "pc-1")
    ref = db.append("press", [Reading("t", now, 1.5)])
    assert ref is not None
    db.commit()
    (batch,) = db.claim_ids([ref], 1000, now)
    db.tracing.confirmed([batch.seq])
    assert tracer.spans == []
    db.close()
