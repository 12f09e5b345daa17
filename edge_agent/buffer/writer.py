"""The one writer thread: owns the SQLite connection, runs operations in order, group-commits."""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from edge_agent.buffer.db import BufferDB, ChunkRef

__all__ = ["Bounds", "WriterThread"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_STOP = object()


@dataclass(frozen=True, slots=True)
class Bounds:
    """The buffer's limits (`max_age` in seconds, None for unbounded)."""

    max_bytes: int = 1 << 30
    max_age: float | None = 7 * 86400.0
    on_full: str = "drop_oldest"


class WriterThread(threading.Thread):
    """Run buffer operations on one thread; commit at most `commit_interval` after a write."""

    def __init__(
        self,
        open_db: Callable[[], BufferDB],
        *,
        bounds: Bounds,
        commit_interval: float,
        on_committed: Callable[[list[ChunkRef]], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name="buffer-writer", daemon=True)
        self._open_db = open_db
        self._ops: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.bounds = bounds
        self.commit_interval = commit_interval
        self._on_committed = on_committed
        self._clock = clock
        self.ready: concurrent.futures.Future[BufferDB] = concurrent.futures.Future()
        self.commits = 0

    def submit(self, fn: Callable[[BufferDB], T]) -> concurrent.futures.Future[T]:
        """Queue `fn(db)`; the future resolves with its result (writes not yet committed)."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._ops.put((fn, fut))
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
        self.ready.set_result(db)
        try:
            self._loop(db)
        finally:
            db.close()

    def _loop(self, db: BufferDB) -> None:
        fresh: list[ChunkRef] = []
        deadline: float | None = None  # commit due time, set by the first write of a group
        next_age_check = 0.0
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                op = self._ops.get(timeout=timeout)
            except queue.Empty:
                op = None
            if op is _STOP:
                self._commit(db, fresh)
                return
            if op is not None:
                fn, fut = op
                # A caller that gave up (cancelled) still gets its operation run: an ack or
                # a claim must not be half-done. Only the result is dropped.
                wanted = fut is not None and fut.set_running_or_notify_cancel()
                try:
                    result = fn(db)
                except Exception as exc:
                    log.exception("buffer operation failed")
                    if wanted:
                        assert fut is not None
                        fut.set_exception(exc)
                else:
                    if isinstance(result, ChunkRef):
                        fresh.append(result)
                    if wanted:
                        assert fut is not None
                        fut.set_result(result)
                if db.in_txn and deadline is None:
                    deadline = time.monotonic() + self.commit_interval
            if db.commit_requested or (deadline is not None and time.monotonic() >= deadline):
                db.commit_requested = False
                now = self._clock()
                min_ts = None
                if self.bounds.max_age is not None and now >= next_age_check:
                    min_ts = int((now - self.bounds.max_age) * 1000)
                    next_age_check = now + 5.0
                db.enforce(self.bounds.max_bytes, min_ts, self.bounds.on_full)
                self._commit(db, fresh)
                fresh = []
                deadline = None

    def _commit(self, db: BufferDB, fresh: list[ChunkRef]) -> None:
        db.commit()
        self.commits += 1
        if fresh:
            # Only now are these readings eligible for publishing (ARCHITECTURE.md §delivery 1).
            self._on_committed(fresh)
