"""Synchronous buffer operations on one SQLite connection; only the writer thread calls these."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Protocol

import wire
from edge_agent.buffer.downsample import downsample
from edge_agent.buffer.readings import (
    EVENTS_LANE,
    Encoder,
    Reading,
    Value,
    assemble,
    decode_body,
    encode_body,
    encode_events_body,
    events_lane,
    lane_machine,
    wire_encoder,
)
from edge_agent.buffer.schema import is_disk_full, open_database
from edge_agent.buffer.seqs import SeqAllocator
from wire import batch_digest

__all__ = [
    "MAX_BATCH_BYTES",
    "Batch",
    "BatchTracing",
    "BufferDB",
    "ChunkRef",
    "Totals",
    "is_disk_full",
]

log = logging.getLogger(__name__)
_ts_of = attrgetter("ts")


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """A committed chunk the live lane may claim."""

    id: int
    device: str
    n: int


class BatchTracing(Protocol):
    """Follows batches for tracing (edge_agent/publish/tracing.py); called on the writer thread."""

    def committed(self, refs: Sequence[ChunkRef], start_ns: int, end_ns: int) -> None:
        """Chunks `refs` were written in the group that ran from `start_ns` to `end_ns`."""

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
        """Batch `seq` is being built (`again`: rebuilt to be sent again): the traceparent its
        payload carries, or None. The same batch must get the same one when sent again (same
        bytes, same digest)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """A claimed batch: `seq` is fixed for life, republishing sends the same readings."""

    seq: int
    device: str
    n: int
    payload: bytes
    oldest_ts: int
    digest: str  # wire.batch_digest(payload): what the hub's receipt must name to delete it


@dataclass
class Totals:
    """What the buffer holds, kept in memory so status never scans the table."""

    chunks: int = 0
    readings: int = 0
    nbytes: int = 0
    pending: Counter[str] = field(default_factory=Counter)  # readings per device
    claimed: int = 0  # readings in batches awaiting a receipt (or PUBACK)
    dropped: Counter[str] = field(default_factory=Counter)
    # Per device, the newest spans of reading time the bounds dropped: [first_ts, last_ts, n]
    # (since this start), so the hub can say why those minutes are missing.
    drop_spans: dict[str, list[list[int]]] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)  # refused by the wire contract
    downsampled: Counter[str] = field(default_factory=Counter)
    # Receipts naming a seq this buffer holds with another payload's digest: kept, not deleted.
    foreign_receipts: int = 0


# Warn on the first foreign receipts, then every thousandth: a forger must not flood the log.
_LOG_AT = frozenset({1, 10, 100})

# Merged backlog batches stay well under the hub's 1 MiB payload limit.
MAX_BATCH_BYTES = 900_000


class BufferDB:
    """The buffer's SQLite I/O: append, claim, republish, acknowledge, bound."""

    ROW_OVERHEAD = 64  # bytes per chunk row beyond its body (row header, index entries)

    def __init__(self, path: Path, *, now_ms: int, encoder: Encoder | None = None) -> None:
        self.conn, self.moved_aside = open_database(path, now_ms=now_ms)
        self.path = path
        self.encode = encoder or wire_encoder("buffer")
        self.tracing: BatchTracing | None = None
        ceiling = self.conn.execute("SELECT value FROM meta WHERE key='seq_ceiling'").fetchone()
        self.seqs = SeqAllocator(int(ceiling[0]))
        self.totals = Totals()
        # Drops not yet written to the `drops` table (readings lost to a full disk): written
        # with the next group that commits.
        self._unsaved_drops: Counter[str] = Counter()
        self._load_totals()
        self.in_txn = False
        # Set while writes fail for lack of space (the writer thread manages it).
        self.disk_full = False
        try:
            # Batches claimed before a restart have an unknown fate: publish them again at once.
            self.conn.execute("UPDATE chunk SET sent_ms = 0 WHERE seq IS NOT NULL")
        except sqlite3.Error as exc:
            if not is_disk_full(exc):
                raise
            # They are republished after the receipt timeout instead; the writer handles the rest.
            self.disk_full = True
        # Every row below this id is claimed (or gone): claims only ever move forward, and a
        # claimed row never becomes unclaimed again, so the backlog scan starts here.
        self._backlog_from = 0
        self.commit_requested = False  # set by an operation that needs the group committed now

    def _load_totals(self) -> None:
        """Count what the database holds (at start, and after a rolled-back group)."""
        old = self.totals
        t = self.totals = Totals(rejected=old.rejected, foreign_receipts=old.foreign_receipts)
        for device, n, count, nbytes in self.conn.execute(
            "SELECT device, sum(n), count(*), sum(nbytes) FROM chunk GROUP BY device"
        ):
            t.pending[device] = n
            t.readings += n
            t.chunks += count
            t.nbytes += nbytes + count * self.ROW_OVERHEAD
        for device, dropped, ds in self.conn.execute("SELECT * FROM drops"):
            t.dropped[device] = dropped
            t.downsampled[device] = ds
        t.dropped.update(self._unsaved_drops)
        row = self.conn.execute("SELECT coalesce(sum(n), 0) FROM chunk WHERE seq IS NOT NULL")
        t.claimed = int(row.fetchone()[0])

    # -- transactions ------------------------------------------------------------------------
    def begin(self) -> None:
        """Open the group's transaction if none is open."""
        if not self.in_txn:
            self.conn.execute("BEGIN")
            self.in_txn = True

    def commit(self) -> None:
        """Commit the group (fsync under synchronous=FULL)."""
        if self.in_txn:
            for device, n in self._unsaved_drops.items():
                self._save_drops(device, n)
            self.conn.execute("COMMIT")
            self.in_txn = False
            self._unsaved_drops.clear()

    def rollback(self, lost: Counter[str]) -> None:
        """Undo the open group after a failed write; `lost` readings (per device) were in it.

        They were never committed, so never eligible for publishing: they are counted as
        dropped, like readings the buffer's bounds drop. Batches claimed in the group lose their
        seq and are claimed again; their receipts (if they were sent) delete nothing.
        """
        if self.in_txn or self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
                self.conn.execute("ROLLBACK")
        self.in_txn = False
        self._unsaved_drops.update(lost)
        self._load_totals()
        self._backlog_from = 0

    def give_back_wal(self) -> None:
        """Checkpoint the write-ahead log into the database file and truncate it (between
        groups): with the disk full, the log's bytes are the room deletes and new groups need.

        Without it the log could stay at its size with pages the database file cannot take in
        (a checkpoint that must grow the file fails on a full disk): every write, even the
        delete of a receipted batch, then failed, and the agent stopped sending for good."""
        if self.in_txn or self.conn.in_transaction:
            return
        with contextlib.suppress(sqlite3.Error):  # still no room: tried again later
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Commit, note the clean close (see schema's BUFFER WAL MISSING) and close."""
        self.begin()
        self.conn.execute("UPDATE meta SET value = 0 WHERE key = 'open'")
        self.commit()
        self.conn.close()

    # -- writes ------------------------------------------------------------------------------
    def _valid_only(self, device: str, readings: list[Reading]) -> list[Reading]:
        """Keep the readings the hub would accept; count the rest (never poison a batch)."""
        kept = []
        for r in readings:
            try:
                encode_body(self.encode, device, [r])
            except ValueError as exc:
                if not self.totals.rejected[device]:
                    log.warning("device %s: reading refused by the wire contract: %s", device, exc)
                self.totals.rejected[device] += 1
            else:
                kept.append(r)
        return kept

    def append(self, device: str, readings: list[Reading], ds: int = 0) -> ChunkRef | None:
        """Store one chunk (uncommitted until the group commits)."""
        try:
            body = encode_body(self.encode, device, readings)
        except ValueError:
            readings = self._valid_only(device, readings)
            if not readings:
                return None
            body = encode_body(self.encode, device, readings)
        self.begin()
        first_ts = min(map(_ts_of, readings))  # in C: this runs for every chunk
        cur = self.conn.execute(
            "INSERT INTO chunk (device, n, nbytes, first_ts, ds, body) VALUES (?,?,?,?,?,?)",
            (device, len(readings), len(body), first_ts, ds, body),
        )
        assert cur.lastrowid is not None
        self._count(device, len(readings), len(body), +1)
        return ChunkRef(cur.lastrowid, device, len(readings))

    def append_events(
        self, machine: str, events: list[wire.MachineEvent], state: dict[str, Value]
    ) -> ChunkRef | None:
        """Store a machine's events as one chunk of its events lane, and the new last values of
        its `event:` tags (`state`), in the same group (uncommitted until it commits); an event
        the hub would refuse is counted and left out."""
        lane = events_lane(machine)
        self.begin()
        self.conn.executemany(
            "INSERT INTO event_state (device, tag, value) VALUES (?, ?, ?)"
            " ON CONFLICT (device, tag) DO UPDATE SET value = excluded.value",
            [(machine, tag, json.dumps(v)) for tag, v in state.items()],
        )
        if not events:
            return None
        try:
            body = encode_events_body(events)
        except ValueError:
            events = [e for e in events if self._event_ok(lane, e)]
            if not events:
                return None
            body = encode_events_body(events)
        cur = self.conn.execute(
            "INSERT INTO chunk (device, n, nbytes, first_ts, ds, body) VALUES (?,?,?,?,0,?)",
            (lane, len(events), len(body), min(e.ts for e in events), body),
        )
        assert cur.lastrowid is not None
        self._count(lane, len(events), len(body), +1)
        return ChunkRef(cur.lastrowid, lane, len(events))

    def event_state(self, machine: str) -> dict[str, Value]:
        """The last committed value of each `event:` tag of `machine`."""
        rows = self.conn.execute(
            "SELECT tag, value FROM event_state WHERE device = ?", (machine,)
        ).fetchall()
        return {tag: json.loads(value) for tag, value in rows}

    def _event_ok(self, lane: str, event: wire.MachineEvent) -> bool:
        try:
            encode_events_body([event])
        except ValueError as exc:
            if not self.totals.rejected[lane]:
                log.warning("%s: event refused by the wire contract: %s", lane, exc)
            self.totals.rejected[lane] += 1
            return False
        return True

    def _count(self, device: str, n: int, nbytes: int, sign: int) -> None:
        t = self.totals
        t.chunks += sign
        t.readings += sign * n
        t.nbytes += sign * (nbytes + self.ROW_OVERHEAD)
        t.pending[device] += sign * n
        if t.pending[device] <= 0:
            del t.pending[device]

    def _take_seq(self) -> int:
        seq, ceiling = self.seqs.take()
        if ceiling is not None:
            # The ceiling must be durable before any seq below it leaves the process.
            self.begin()
            self.conn.execute("UPDATE meta SET value=? WHERE key='seq_ceiling'", (ceiling,))
            self.commit()
        return seq

    def _claim(self, ids: list[int], device: str, now_ms: int) -> Batch | None:
        rows = self.conn.execute(
            f"SELECT id, body, n, first_ts FROM chunk WHERE id IN ({','.join('?' * len(ids))}) "  # noqa: S608 -- placeholders only
            "AND seq IS NULL ORDER BY id",
            ids,
        ).fetchall()
        if not rows:
            return None
        seq = self._take_seq()
        trace = None
        if self.tracing is not None:
            ids = [r[0] for r in rows]
            trace = self.tracing.claimed(device, seq, rows[0][1], ids, rows[0][3], again=False)
        payload = assemble(self.encode, device, seq, [r[1] for r in rows], trace)
        digest = batch_digest(payload)
        self.begin()
        self.conn.executemany(
            "UPDATE chunk SET seq=?, sent_ms=?, digest=? WHERE id=?",
            [(seq, now_ms, digest, r[0]) for r in rows],
        )
        n = sum(r[2] for r in rows)
        self.totals.claimed += n
        return Batch(seq, device, n, payload, min(r[3] for r in rows), digest)

    def claim_ids(self, refs: list[ChunkRef], max_batch: int, now_ms: int) -> list[Batch]:
        """Claim committed chunks for the live lane, merging per device up to `max_batch`."""
        out: list[Batch] = []
        groups: dict[str, list[list[ChunkRef]]] = {}
        for ref in refs:
            per = groups.setdefault(ref.device, [[]])
            if per[-1] and sum(r.n for r in per[-1]) + ref.n > max_batch:
                per.append([])
            per[-1].append(ref)
        for device, parts in groups.items():
            for part in parts:
                batch = self._claim([r.id for r in part], device, now_ms)
                if batch is not None:
                    out.append(batch)
        return out

    def claim_backlog(
        self, max_batch: int, now_ms: int, below_id: int | None = None, limit: int = 1
    ) -> list[Batch]:
        """Claim the oldest unclaimed chunks (backlog lane), up to `limit` batches."""
        out: list[Batch] = []
        bound = below_id if below_id is not None else 1 << 62
        while len(out) < limit:
            first = self.conn.execute(
                "SELECT id, device FROM chunk WHERE seq IS NULL AND id >= ? AND id < ? "
                "ORDER BY id LIMIT 1",
                (self._backlog_from, bound),
            ).fetchone()
            if first is None:
                # Nothing unsent past the mark; start from the top next time (cheap when idle).
                self._backlog_from = 0
                break
            # Claimed rows stay until their receipt; never scan past them again.
            self._backlog_from = first[0]
            ids: list[int] = []
            total = 0
            nbytes = 0
            for cid, n, size in self.conn.execute(
                "SELECT id, n, nbytes FROM chunk WHERE seq IS NULL AND device=? AND id >= ? "
                "AND id < ? ORDER BY id LIMIT 1000",
                (first[1], first[0], bound),
            ):
                if ids and (total + n > max_batch or nbytes + size > MAX_BATCH_BYTES):
                    break
                ids.append(cid)
                total += n
                nbytes += size
            batch = self._claim(ids, first[1], now_ms)
            if batch is not None:
                out.append(batch)
        return out

    def due(self, now_ms: int, timeout_ms: int, limit: int) -> list[Batch]:
        """Batches without a receipt for `timeout_ms`: same seq, same readings, sent again."""
        seqs = [
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT seq FROM chunk INDEXED BY chunk_inflight "
                "WHERE seq IS NOT NULL AND sent_ms <= ? "
                "ORDER BY seq LIMIT ?",
                (now_ms - timeout_ms, limit),
            )
        ]
        out = []
        for seq in seqs:
            rows = self.conn.execute(
                "SELECT device, body, n, first_ts FROM chunk WHERE seq=? ORDER BY id", (seq,)
            ).fetchall()
            device = rows[0][0]
            trace = None
            if self.tracing is not None:
                trace = self.tracing.claimed(device, seq, rows[0][1], (), rows[0][3], again=True)
            payload = assemble(self.encode, device, seq, [r[1] for r in rows], trace)
            digest = batch_digest(payload)
            self.begin()
            # The same bytes as before, so the same digest (set here for version-1 buffers).
            self.conn.execute(
                "UPDATE chunk SET sent_ms=?, digest=? WHERE seq=?", (now_ms, digest, seq)
            )
            n = sum(r[2] for r in rows)
            out.append(Batch(seq, device, n, payload, min(r[3] for r in rows), digest))
        return out

    def unclaim(self, seqs: list[int]) -> None:
        """Mark batches as due now (e.g. their publish failed on a dropped connection)."""
        self.begin()
        self.conn.executemany("UPDATE chunk SET sent_ms=0 WHERE seq=?", [(s,) for s in seqs])

    def ack(self, batches: list[tuple[int, str]]) -> int:
        """Delete each batch `seq` whose payload has `digest`; return readings deleted.

        A (seq, digest) this buffer holds under another digest is someone else's payload that
        reused our seq: the hub stored that, not ours, so ours stays and is sent again.
        """
        self.begin()
        deleted = 0
        for seq, digest in batches:
            rows = self.conn.execute(
                "DELETE FROM chunk WHERE seq=? AND digest=? RETURNING device, n, nbytes",
                (seq, digest),
            ).fetchall()
            for device, n, nbytes in rows:
                self._count(device, n, nbytes, -1)
                self.totals.claimed -= n
                deleted += n
            if (
                not rows
                and self.conn.execute("SELECT 1 FROM chunk WHERE seq=? LIMIT 1", (seq,)).fetchone()
            ):
                self.totals.foreign_receipts += 1
                if (
                    self.totals.foreign_receipts in _LOG_AT
                    or self.totals.foreign_receipts % 1000 == 0
                ):
                    log.warning(
                        "a receipt for batch %d names a payload this agent did not send "
                        "(digest %s); the batch is kept and sent again. Another publisher is "
                        "using this agent's src and seqs (%d such receipts so far)",
                        seq,
                        digest,
                        self.totals.foreign_receipts,
                    )
        return deleted

    # -- bounds ------------------------------------------------------------------------------
    def enforce(self, max_bytes: int, min_ts: int | None, mode: str) -> None:
        """Drop (or downsample) the oldest chunks until the buffer is within its bounds."""
        if min_ts is not None and self.totals.chunks:
            self.begin()
            self._drop(
                "DELETE FROM chunk WHERE first_ts < ? RETURNING device, n, nbytes, seq, first_ts",
                min_ts,
            )
        while self.totals.nbytes > max_bytes and self.totals.chunks:
            self.begin()
            if mode == "downsample_oldest" and self._downsample_oldest():
                continue
            self._drop(
                "DELETE FROM chunk WHERE id IN (SELECT id FROM chunk ORDER BY id LIMIT ?) "
                "RETURNING device, n, nbytes, seq, first_ts",
                16,
            )

    def _drop(self, sql: str, arg: int) -> None:
        counts: Counter[str] = Counter()
        for device, n, nbytes, seq, first_ts in self.conn.execute(sql, (arg,)).fetchall():
            self._count(device, n, nbytes, -1)
            if seq is not None:
                self.totals.claimed -= n
            counts[device] += n
            _add_drop_span(self.totals.drop_spans.setdefault(device, []), first_ts, n)
        for device, n in counts.items():
            self.totals.dropped[device] += n
            self._save_drops(device, n)

    def _save_drops(self, device: str, n: int) -> None:
        self.conn.execute(
            "INSERT INTO drops (device, dropped) VALUES (?, ?) "
            "ON CONFLICT(device) DO UPDATE SET dropped = dropped + excluded.dropped",
            (device, n),
        )

    def _downsample_oldest(self) -> bool:
        """Summarise the oldest raw unclaimed run of one device; False if none is left."""
        # Events are never summarised: an alarm is not an average.
        first = self.conn.execute(
            "SELECT id, device FROM chunk WHERE ds=0 AND seq IS NULL AND device NOT LIKE ?"
            " ORDER BY id LIMIT 1",
            (f"%{EVENTS_LANE}",),
        ).fetchone()
        if first is None:
            return False
        rows = self.conn.execute(
            "SELECT id, n, nbytes, body FROM chunk WHERE ds=0 AND seq IS NULL AND device=? "
            "ORDER BY id LIMIT 64",
            (first[1],),
        ).fetchall()
        readings = [x for r in rows for x in decode_body(r[3])]
        summary = downsample(readings)
        ids = [r[0] for r in rows]
        self.conn.execute(
            f"DELETE FROM chunk WHERE id IN ({','.join('?' * len(ids))})",  # noqa: S608 -- placeholders only
            ids,
        )
        for r in rows:
            self._count(first[1], r[1], r[2], -1)
        body = encode_body(self.encode, first[1], summary)
        # Reuse the oldest id so the summary keeps its place at the head of the queue.
        self.conn.execute(
            "INSERT INTO chunk (id, device, n, nbytes, first_ts, ds, body) VALUES (?,?,?,?,?,1,?)",
            (ids[0], first[1], len(summary), len(body), min(r.ts for r in summary), body),
        )
        self._count(first[1], len(summary), len(body), +1)
        lost = len(readings) - len(summary)
        self.totals.downsampled[first[1]] += lost
        self.conn.execute(
            "INSERT INTO drops (device, downsampled) VALUES (?, ?) "
            "ON CONFLICT(device) DO UPDATE SET downsampled = downsampled + excluded.downsampled",
            (first[1], lost),
        )
        return True

    # -- reads -------------------------------------------------------------------------------
    def oldest_ts(self) -> int | None:
        """Timestamp of the oldest buffered reading (approximately: of the oldest chunk)."""
        row = self.conn.execute("SELECT first_ts FROM chunk ORDER BY id LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def oldest_unsent_ts(self) -> int | None:
        """Timestamp of the oldest chunk not yet in any batch (the head of the backlog)."""
        row = self.conn.execute(
            "SELECT first_ts FROM chunk WHERE seq IS NULL AND id >= ? ORDER BY id LIMIT 1",
            (self._backlog_from,),
        ).fetchone()
        return None if row is None else int(row[0])

    def unclaimed(self) -> int:
        """Readings not yet in any batch (the backlog)."""
        return self.totals.readings - self.totals.claimed

    def export(self, since_ts: int, sink: Callable[[str, Reading], None]) -> int:
        """Feed every buffered reading with ts >= since_ts to `sink`; return the count."""
        count = 0
        for device, body in self.conn.execute("SELECT device, body FROM chunk ORDER BY id"):
            if lane_machine(device)[1]:
                continue  # events are not readings
            for r in decode_body(body):
                if r.ts >= since_ts:
                    sink(device, r)
                    count += 1
        return count

    def purge(self) -> int:
        """Delete every buffered reading; return how many."""
        self.begin()
        n = self.totals.readings
        self.conn.execute("DELETE FROM chunk")
        self.commit()
        self._backlog_from = 0
        t = self.totals
        self.totals = Totals(dropped=t.dropped, downsampled=t.downsampled, rejected=t.rejected)
        return n


def is_locked(exc: sqlite3.Error) -> bool:
    """True when another process holds the database (e.g. a running agent)."""
    return "locked" in str(exc) or "busy" in str(exc)


# Drop spans kept per device, and the gap (ms) below which a dropped chunk extends the newest
# span rather than starting one: the bounds drop the oldest chunks, which follow each other.
_DROP_SPANS = 10
_SPAN_GAP_MS = 60_000


def _add_drop_span(spans: list[list[int]], first_ts: int, n: int) -> None:
    """Account a dropped chunk starting at `first_ts` in `spans` ([first, last, n], newest last)."""
    newest = spans[-1] if spans else None
    if newest is not None and newest[0] - _SPAN_GAP_MS <= first_ts <= newest[1] + _SPAN_GAP_MS:
        newest[0] = min(newest[0], first_ts)
        newest[1] = max(newest[1], first_ts)
        newest[2] += n
        return
    spans.append([first_ts, first_ts, n])
    del spans[:-_DROP_SPANS]
