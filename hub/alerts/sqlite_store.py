"""`AlertStore` on SQLite (the demo, one hub instance): the same tables and statements as
PostgreSQL's (migration sqlite/0022), on a connection of its own on a thread of its own.

SQLite has one writer at a time, so the feed's id order is commit order and the evaluator reads
`id > cursor`. Leading is an exclusive lock on a file beside the database (`<db>.alerts.lock`,
released when the process dies): a second hub process on the same file stands by instead of
evaluating the feed a second time. Nobody is woken by the database; the evaluator polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self, TypeVar

from hub.alerts.engine import Transition
from hub.alerts.feed import FeedRow, fetch_feed_sqlite
from hub.alerts.store import (
    CLAIM,
    HOLD_BACK,
    RETRY,
    TRANSITION,
    Checkpoint,
    Pending,
    pack_state,
    steps,
    unpack_state,
)
from hub.errors import StorageUnavailable
from hub.sql.singleton import STANDBY_POLL_S, wait
from hub.storage.snapshot_order import START, Position
from hub.storage.statements import for_sqlite

__all__ = ["SqliteAlertStore"]

_T = TypeVar("_T")

_QUEUE = """
INSERT INTO alert_notifications (alert_id, state, notifier) VALUES (?, ?, ?)
ON CONFLICT (alert_id, state, notifier) DO NOTHING
"""
_TRANSITION = for_sqlite(TRANSITION)
_ACK = """
UPDATE alerts SET state = 'acknowledged', acked_ms = ?, acked_by = ?, ack_comment = ?
WHERE id = ? AND state = 'active'
RETURNING rule, value
"""
_CLAIM = for_sqlite(CLAIM)
_RETRY = for_sqlite(RETRY)
_HOLD_BACK = for_sqlite(HOLD_BACK)


class SqliteAlertStore:
    """`AlertStore` on an SQLite file (see module docstring); `async with` opens it."""

    poll_s = 0.2

    def __init__(self, path: str) -> None:
        self._path = path
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None

    @classmethod
    def from_url(cls, url: str) -> Self:
        """`sqlite:///path` as the hub config spells it."""
        return cls(url.removeprefix("sqlite:///"))

    async def __aenter__(self) -> Self:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-alerts-sqlite")
        try:
            await self._run(self._open)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def _open(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        # The ingest holds the write lock a commit at a time; wait for it, don't fail.
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA foreign_keys=ON")
        self._conn = conn

    async def _run(self, fn: Callable[[], _T]) -> _T:
        if self._executor is None:
            raise StorageUnavailable("the alerts' SQLite connection is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"SQLite: {type(exc).__name__}: {exc}") from exc

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageUnavailable("the alerts' SQLite connection is closed")
        return self._conn

    async def lead(self, stop: asyncio.Event, standby: Callable[[], None]) -> bool:
        if self._path == ":memory:":
            return True
        try:
            fd = os.open(f"{self._path}.alerts.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageUnavailable(f"SQLite: cannot open the alerts' lock file: {exc}") from exc
        while not stop.is_set():
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                standby()
                await wait(stop, STANDBY_POLL_S)
                continue
            self._lock_fd = fd
            return True
        os.close(fd)
        return False

    async def listen(self, feed: asyncio.Event | None, queued: asyncio.Event | None) -> None:
        return  # SQLite cannot tell another connection; the evaluator polls every poll_s

    async def load_checkpoint(self) -> Checkpoint:
        def run() -> Checkpoint:
            row = self._db.execute("SELECT cursor, state FROM alert_checkpoint").fetchone()
            if row is None:
                return Checkpoint(START, {})
            return Checkpoint((0, int(row[0])), unpack_state(row[1]))

        return await self._run(run)

    async def save_checkpoint(self, cp: Checkpoint, now_ms: int) -> None:
        blob = pack_state(cp.state)

        def run() -> None:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO alert_checkpoint (id, cursor, state, saved_at) VALUES (1, ?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor,"
                    " state = excluded.state, saved_at = excluded.saved_at",
                    (cp.cursor[1], blob, now_ms),
                )
                db.execute("DELETE FROM alert_feed WHERE id <= ?", (cp.cursor[1],))

        await self._run(run)

    async def fetch_feed(self, after: Position, limit: int) -> list[FeedRow]:
        return await self._run(lambda: fetch_feed_sqlite(self._db, after, limit))

    async def record(
        self,
        transitions: Sequence[Transition],
        now_ms: int,
        silenced: Callable[[Transition], bool],
    ) -> list[dict[str, Any]]:
        planned = steps(transitions, now_ms, silenced)

        def run() -> list[dict[str, Any]]:
            new = []
            with self._transaction() as db:
                for step in planned:
                    db.execute(for_sqlite(step.sql), step.args)
                    if db.execute(_TRANSITION, step.transition).fetchone() is None:
                        continue  # recorded before (a replay from the checkpoint)
                    new.append(step.change)
                    alert, state = step.transition[:2]
                    db.executemany(_QUEUE, [(alert, state, n) for n in step.notify])
            return new

        return await self._run(run)

    async def claim(self, now_ms: int, limit: int) -> list[Pending]:
        def run() -> list[Pending]:
            cur = self._db.execute(_CLAIM, (now_ms, limit))
            names = [c[0] for c in cur.description or ()]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
            return [Pending(r["id"], r["notifier"], r["attempts"], r) for r in rows]

        return await self._run(run)

    async def delivered(self, ids: Sequence[int]) -> None:
        def run() -> None:
            with self._transaction() as db:
                db.executemany("DELETE FROM alert_notifications WHERE id = ?", [(i,) for i in ids])

        await self._run(run)

    async def retry_later(self, notifier: str, nid: int, next_ms: int, error: str) -> None:
        def run() -> None:
            with self._transaction() as db:
                db.execute(_RETRY, (nid, next_ms, error[:500]))
                db.execute(_HOLD_BACK, (notifier, next_ms))

        await self._run(run)

    async def acknowledge(
        self,
        alert: str,
        *,
        who: str,
        comment: str,
        now_ms: int,
        notify: Mapping[str, Sequence[str]],
    ) -> bool:
        """`hub.alerts.store.acknowledge` on SQLite: the occurrence, its transition and the
        notifications its rule's notifiers get, in one transaction; False if it is not active."""

        def run() -> bool:
            with self._transaction() as db:
                row = db.execute(_ACK, (now_ms, who, comment, alert)).fetchone()
                if row is None:
                    return False
                rule, value = row
                step = (alert, "acknowledged", now_ms, value, who, comment, now_ms)
                db.execute(_TRANSITION, step).fetchone()
                db.executemany(_QUEUE, [(alert, "acknowledged", n) for n in notify.get(rule, ())])
                return True

        return await self._run(run)

    async def to_outbox(self, pending: Sequence[Pending]) -> None:
        # Config validation refuses a kafka notifier without PostgreSQL; never reached.
        raise StorageUnavailable("a kafka notifier needs PostgreSQL storage")

    async def aclose(self) -> None:
        if self._executor is None:
            return
        with contextlib.suppress(StorageUnavailable):
            await self._run(self._close)
        self._executor.shutdown(wait=True)
        self._executor = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # gives up leading
            self._lock_fd = None

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE: take the write lock up front, so a busy database is waited for
        # (busy_timeout) rather than failing when a read turns into a write.
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
