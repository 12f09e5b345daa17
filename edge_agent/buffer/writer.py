"""The one writer thread: owns the SQLite connection, runs operations in order, group-commits."""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from edge_agent.buffer.db import BufferDB, ChunkRef, is_disk_full
from edge_agent.buffer.reserve import DiskReserve
from edge_agent.errors import DiskFull

__all__ = ["Bounds", "WriterThread"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_STOP = object()
_WAKE = object()  # an urgent operation is waiting (it is taken from `_urgent`, not from here)


@dataclass(frozen=True, slots=True)
class Bounds:
    """The buffer's limits (`max_age` in seconds, None for unbounded)."""

    max_bytes: int = 1 << 30
    max_age: float | None = 7 * 86400.0
    on_full: str = "drop_oldest"


# Commits are at least this far apart: a group commit is one fsync (synchronous=FULL), and a
# writer committing after every small write would spend itself on them.
MIN_COMMIT_GAP_S = 0.01


class WriterThread(threading.Thread):
    """Run buffer operations on one thread and commit them in groups: as soon as nothing else is
    queued (a reading is durable, and published, without waiting out a fixed interval when the
    agent is not busy), at most every `MIN_COMMIT_GAP_S`, and at the latest `commit_interval`
    after a group's first write (under load, when the queue never runs dry)."""

    def __init__(
        self,
        open_db: Callable[[], BufferDB],
        *,
        bounds: Bounds,
        commit_interval: float,
        on_committed: Callable[[list[ChunkRef]], None],
        clock: Callable[[], float] = time.time,
        reserve: DiskReserve | None = None,
    ) -> None:
        super().__init__(name="buffer-writer", daemon=True)
        self._open_db = open_db
        self._ops: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Receipts go ahead of everything queued: under load thousands of appends (each an
        # encode) may wait, and a receipt stuck behind them would have its batch republished.
        self._urgent: collections.deque[tuple[Callable[[BufferDB], Any], Any]] = collections.deque()
        self.bounds = bounds
        self.commit_interval = commit_interval
        self._on_committed = on_committed
        self._clock = clock
        self.reserve = reserve
        self.ready: concurrent.futures.Future[BufferDB] = concurrent.futures.Future()
        self.commits = 0
        # When writes began to fail for lack of space (wall clock), None while they succeed.
        # Read by the event loop for status; written only here.
        self.disk_full_since: float | None = None
        self.disk_full_lost = 0  # readings of groups rolled back for lack of space
        self._full_cap = 0  # the byte bound while the disk is full (below the size it filled at)
        self._next_space_check = 0.0
        self._next_full_log = 0.0
        self._next_wal_give_back = 0.0
        self._group_start_ns = 0  # wall clock of the open group's first write

    def submit(self, fn: Callable[[BufferDB], T]) -> concurrent.futures.Future[T]:
        """Queue `fn(db)`; the future resolves with its result (writes not yet committed)."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._ops.put((fn, fut))
        return fut

    def submit_urgent(self, fn: Callable[[BufferDB], T]) -> concurrent.futures.Future[T]:
        """Like `submit`, run before every operation queued but not started (receipts)."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._urgent.append((fn, fut))
        self._ops.put(_WAKE)
        return fut

    def post(self, fn: Callable[[BufferDB], object]) -> None:
        """Queue `fn(db)` without waiting for it (the append hot path)."""
        self._ops.put((fn, None))

    def stop(self) -> None:
        """Commit what is pending and close the database."""
        self._ops.put(_STOP)

    def run(self) -> None:
        """Thread body."""
        try:
            db = self._open_db()
        except BaseException as exc:
            self.ready.set_exception(exc)
            return
        if self.reserve is not None:
            self.reserve.ensure()
        if db.disk_full:  # the start itself could not write
            self._disk_full(db, [], "starting")
        self.ready.set_result(db)
        try:
            self._loop(db)
        finally:
            try:
                db.close()
            except sqlite3.Error as exc:  # the last group could not be written (disk full)
                # No traceback: the reason is the whole story (the disk is full).
                log.error("buffer: the last group could not be committed at close: %s", exc)  # noqa: TRY400
                db.conn.close()

    def _loop(self, db: BufferDB) -> None:
        fresh: list[ChunkRef] = []
        deadline: float | None = None  # commit due time, set by the first write of a group
        next_age_check = 0.0
        last_commit = 0.0
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if db.disk_full:  # wake up to see whether space came back
                timeout = 1.0 if timeout is None else min(timeout, 1.0)
            op = self._next_op(timeout)
            if op is _STOP:
                self._commit_or_roll_back(db, fresh)
                return
            if db.disk_full:
                self._check_space(db)
            if op is not None:
                if not self._run_op(db, op, fresh):
                    fresh, deadline = [], None  # the group was rolled back
                if db.in_txn and deadline is None:
                    deadline = time.monotonic() + self.commit_interval
                    self._group_start_ns = time.time_ns()  # for tracing
                if deadline is not None and self._ops.empty() and not self._urgent:
                    # Idle: commit now (or once the gap since the last commit has passed).
                    deadline = min(deadline, last_commit + MIN_COMMIT_GAP_S)
            if db.commit_requested or (deadline is not None and time.monotonic() >= deadline):
                db.commit_requested = False
                now = self._clock()
                min_ts = None
                if self.bounds.max_age is not None and now >= next_age_check:
                    min_ts = int((now - self.bounds.max_age) * 1000)
                    next_age_check = now + 5.0
                self._end_group(db, fresh, min_ts)
                fresh = []
                deadline = None
                last_commit = time.monotonic()

    def _next_op(self, timeout: float | None) -> Any:
        """The next operation: an urgent one first; None when `timeout` passed without one."""
        if self._urgent:
            return self._urgent.popleft()
        try:
            op = self._ops.get(timeout=timeout)
        except queue.Empty:
            return None
        if op is _WAKE:  # its operation may have run already (taken first, above)
            return self._urgent.popleft() if self._urgent else None
        return op

    def _run_op(self, db: BufferDB, op: Any, fresh: list[ChunkRef]) -> bool:
        """Run one queued operation; False when a full disk made the group roll back."""
        fn, fut = op
        # A caller that gave up (cancelled) still gets its operation run: an ack or a claim
        # must not be half-done. Only the result is dropped.
        wanted = fut is not None and fut.set_running_or_notify_cancel()
        try:
            result = fn(db)
        except Exception as exc:
            failure: Exception = exc
            full = is_disk_full(exc)
            if full:
                # SQLite may have undone the whole group: undo it ourselves, and count it.
                self._disk_full(db, fresh, str(exc))
                failure = DiskFull(f"the buffer's disk is full: {exc}")
            else:
                log.exception("buffer operation failed")
            if wanted:
                fut.set_exception(failure)
            return not full
        if isinstance(result, ChunkRef):
            fresh.append(result)
        if wanted:
            fut.set_result(result)
        return True

    def _end_group(self, db: BufferDB, fresh: list[ChunkRef], min_ts: int | None) -> None:
        """Apply the bounds and commit the group."""
        max_bytes = self.bounds.max_bytes
        if db.disk_full:
            max_bytes = min(max_bytes, self._full_cap)
        elif self.reserve is not None and time.monotonic() >= self._next_space_check:
            # A reserve given up before a restart is made again as soon as there is room.
            self._next_space_check = time.monotonic() + 5.0
            self.reserve.ensure()
        try:
            db.enforce(max_bytes, min_ts, self.bounds.on_full)
        except sqlite3.Error as exc:
            self._failed(db, fresh, exc)
        else:
            self._commit_or_roll_back(db, fresh)

    def _commit_or_roll_back(self, db: BufferDB, fresh: list[ChunkRef]) -> None:
        try:
            db.commit()
        except sqlite3.Error as exc:
            self._failed(db, fresh, exc)
            return
        self.commits += 1
        if db.disk_full and time.monotonic() >= self._next_wal_give_back:
            # What dropping the oldest freed, handed back to the filesystem (between groups).
            self._next_wal_give_back = time.monotonic() + 2.0
            db.give_back_wal()
        if fresh:
            if db.tracing is not None:
                db.tracing.committed(fresh, self._group_start_ns, time.time_ns())
            # Only now are these readings eligible for publishing (ARCHITECTURE.md §delivery 1).
            self._on_committed(fresh)

    def _failed(self, db: BufferDB, fresh: list[ChunkRef], exc: sqlite3.Error) -> None:
        """A group could not be written: roll it back and go on (the thread never dies)."""
        if is_disk_full(exc):
            self._disk_full(db, fresh, str(exc))
            return
        log.exception("buffer: a group could not be committed; its readings are dropped")
        db.rollback(_per_device(fresh))

    def _disk_full(self, db: BufferDB, fresh: list[ChunkRef], why: str) -> None:
        lost = _per_device(fresh)
        db.rollback(lost)
        self.disk_full_lost += sum(lost.values())
        first = not db.disk_full or self.disk_full_since is None
        db.disk_full = True
        if self.disk_full_since is None:
            self.disk_full_since = self._clock()
        released = self.reserve is not None and self.reserve.release()
        # The reserve just given back lets the checkpoint grow the database file once.
        db.give_back_wal()
        # Below the size it filled at, so dropping the oldest frees pages new readings reuse.
        self._full_cap = int(db.totals.nbytes * 0.9)
        now = time.monotonic()
        if first or now >= self._next_full_log:
            self._next_full_log = now + 60.0  # then once a minute, never a log storm
            log.error(
                "DISK FULL: the buffer %s cannot grow (%s). %s The agent keeps sending what it "
                "holds and drops its oldest readings to make room (counted as dropped); %d "
                "readings not yet committed were lost so far. Free space on that filesystem: "
                "the agent resumes by itself.",
                db.path,
                why,
                "Released the disk reserve to keep working." if released else "",
                self.disk_full_lost,
            )

    def _check_space(self, db: BufferDB) -> None:
        now = time.monotonic()
        if now < self._next_space_check:
            return
        self._next_space_check = now + 5.0
        if self.reserve is not None and not self.reserve.recovered():
            return
        db.disk_full = False
        since = self.disk_full_since
        self.disk_full_since = None
        log.warning(
            "disk space is back for %s after %.0f s: the buffer writes again",
            db.path,
            self._clock() - (since or self._clock()),
        )


def _per_device(refs: list[ChunkRef]) -> Counter[str]:
    lost: Counter[str] = Counter()
    for ref in refs:
        lost[ref.device] += ref.n
    return lost
