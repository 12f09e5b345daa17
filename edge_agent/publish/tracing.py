"""A batch's trace on the agent: poll → chunk commit → publish → receipt (docs/tracing.md).

Ids are fixed when the batch is claimed and derived from what makes it unique (the agent, its
seq and its first chunk), so a batch sent again after a receipt timeout or a restart carries the
very same `trace` field: the same bytes, the same digest, and its receipt still deletes it.

Spans are emitted once the batch is confirmed (its receipt, or the PUBACK when receipts are
off): the batch's root span from its oldest reading to the receipt, with children for the
polls that read it, the group commit that made it durable, the publish (whose id the payload
carries, so the hub's spans hang under it) and the wait for the receipt. A batch that had to be
sent again is always kept, whatever the ratio: the slow and the broken are what one traces.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.buffer import ChunkRef
from edge_agent.buffer.readings import lane_machine
from millstream_common.tracing import TraceContext, Tracer

__all__ = ["BatchTracer"]

# Bounds on what waits in memory for a later step (a batch never confirmed, a chunk never
# claimed): the oldest are forgotten, which costs a trace, never a reading.
_MAX_PENDING = 20_000
_MAX_CHUNKS = 100_000


@dataclass(slots=True)
class _Pending:
    device: str
    seq: int
    trace_id: int
    root_id: int
    publish_id: int
    sampled: bool
    first_ts_ms: int
    commit: tuple[int, int] | None  # the group commit of its first chunk (ns), if seen
    claimed_ns: int
    sent: int = 1
    puback_ns: int = 0


class BatchTracer:
    """Implements the buffer's `BatchTracing` and hears the publisher's PUBACKs and receipts."""

    def __init__(self, tracer: Tracer, src: str, *, in_payload: bool = True) -> None:
        """`in_payload`: the context goes in the payload's `trace` field (MQTT 3.1.1); False:
        the publisher sends it as an MQTT v5 user property (`traceparent`)."""
        self._in_payload = in_payload
        self._tracer = tracer
        self._src = src.encode()
        self._lock = threading.Lock()  # claims run on the writer thread, receipts on the loop
        self._commits: dict[int, tuple[int, int]] = {}
        self._pending: dict[int, _Pending] = {}

    # -- writer thread -------------------------------------------------------------------------
    def committed(self, refs: Sequence[ChunkRef], start_ns: int, end_ns: int) -> None:
        """Chunks `refs` became durable in the group from `start_ns` to `end_ns`."""
        with self._lock:
            for ref in refs:
                self._commits[ref.id] = (start_ns, end_ns)
            while len(self._commits) > _MAX_CHUNKS:
                del self._commits[next(iter(self._commits))]

    def claimed(
        self,
        device: str,
        seq: int,
        first_body: bytes,
        chunk_ids: Sequence[int],
        first_ts: int,
        *,
        again: bool,
    ) -> str | None:
        """The traceparent batch `seq` carries (None for a machine's events lane)."""
        if lane_machine(device)[1]:
            return None
        digest = hashlib.sha256(b"%s\0%d\0%s" % (self._src, seq, first_body)).digest()
        trace_id = int.from_bytes(digest[:16]) or 1
        root_id = int.from_bytes(digest[16:24]) or 1
        publish_id = int.from_bytes(digest[24:32]) or 1
        sampled = self._tracer.sampled(trace_id)
        now = time.time_ns()
        with self._lock:
            pending = self._pending.get(seq)
            if pending is not None and pending.trace_id == trace_id:
                pending.sent += 1  # sent again: kept whatever the ratio said
                pending.claimed_ns = now
            elif again:  # sent before this process started (a restart): its start is unknown
                self._pending[seq] = _Pending(
                    device, seq, trace_id, root_id, publish_id, sampled, first_ts, None, now, 2
                )
            else:
                commit = None
                for cid in chunk_ids:
                    got = self._commits.pop(cid, None)
                    commit = commit or got
                self._pending[seq] = _Pending(
                    device, seq, trace_id, root_id, publish_id, sampled, first_ts, commit, now
                )
                while len(self._pending) > _MAX_PENDING:
                    del self._pending[next(iter(self._pending))]
        traceparent = TraceContext(trace_id, publish_id, sampled).traceparent
        return traceparent if self._in_payload else None

    def traceparent(self, seq: int) -> str | None:
        """Batch `seq`'s context, for a user property (None if it is not followed)."""
        with self._lock:
            p = self._pending.get(seq)
        return None if p is None else TraceContext(p.trace_id, p.publish_id, p.sampled).traceparent

    # -- event loop ----------------------------------------------------------------------------
    def puback(self, seq: int) -> None:
        """The broker has batch `seq`."""
        with self._lock:
            pending = self._pending.get(seq)
            if pending is not None:
                pending.puback_ns = time.time_ns()

    def confirmed(self, seqs: Sequence[int], *, receipt: bool = True) -> None:
        """Batches `seqs` are confirmed (their receipt, or their PUBACK): emit their spans."""
        now = time.time_ns()
        with self._lock:
            done = [p for s in seqs if (p := self._pending.pop(s, None)) is not None]
        for p in done:
            if p.sampled or p.sent > 1:
                self._emit(p, now, receipt=receipt)

    def _emit(self, p: _Pending, now: int, *, receipt: bool) -> None:
        t = self._tracer
        root = TraceContext(p.trace_id, p.root_id, True)
        publish = TraceContext(p.trace_id, p.publish_id, True)
        first_ns = p.first_ts_ms * 1_000_000
        commit_start, commit_end = p.commit or (p.claimed_ns, p.claimed_ns)
        puback = p.puback_ns or now
        attrs = {
            "millstream.src": self._src.decode(),
            "millstream.device": p.device,
            "millstream.seq": p.seq,
            "millstream.sent": p.sent,
        }
        t.emit("agent.batch", root, None, start_ns=first_ns, end_ns=now, attributes=attrs)
        # From the oldest reading's timestamp to the write that took it in: reading and batching.
        t.emit(
            "agent.poll",
            root.child(),
            root,
            start_ns=first_ns,
            end_ns=commit_start,
            attributes={"millstream.device": p.device},
        )
        t.emit("agent.chunk_commit", root.child(), root, start_ns=commit_start, end_ns=commit_end)
        t.emit(
            "agent.publish",
            publish,
            root,
            start_ns=p.claimed_ns,
            end_ns=puback,
            attributes={"millstream.seq": p.seq, "millstream.republished": p.sent > 1},
            kind="producer",
        )
        if receipt:
            t.emit(
                "agent.receipt",
                root.child(),
                root,
                start_ns=puback,
                end_ns=now,
                attributes={"millstream.seq": p.seq},
            )
