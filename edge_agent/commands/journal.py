"""The command journal: every command id the agent has received, and what became of it.

Why a journal: a command must run at most once, though MQTT QoS 1 may deliver it twice and the
agent may restart at any moment. A command is journalled (committed) before the broker gets its
PUBACK, so one that arrived is never forgotten; it is marked `running` (committed) before the
device is touched, so after a crash in the middle it is reported `failed`, never run again; and
its result stays until the broker has it. Ids are kept a day past their `expires_at`: after
that, a late copy is refused as expired anyway.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

__all__ = ["CommandJournal", "JournalEntry"]

_T = TypeVar("_T")
_KEEP_MS = 86_400_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS command (
    id TEXT PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL,          -- queued | running | finished
    result BLOB,                  -- the wire result, once finished
    sent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS command_todo ON command(state) WHERE state <> 'finished';
CREATE INDEX IF NOT EXISTS command_unsent ON command(sent) WHERE sent = 0;
"""

EntryState = Literal["queued", "running", "finished"]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journalled command."""

    id: str
    body: bytes
    state: EntryState
    result: bytes | None


class CommandJournal:
    """commands.db: synchronous, safe to call from worker threads (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a journalled command survives power loss, as the buffer's readings do.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()

    def _tx(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return out

    def receive(self, command_id: str, body: bytes, expires_at: int, now_ms: int) -> bool:
        """Journal a command; False if the id was journalled before (a duplicate delivery)."""

        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO command (id, received_ms, expires_at, body, state)"
                " VALUES (?, ?, ?, ?, 'queued')",
                (command_id, now_ms, expires_at, body),
            )
            return cur.rowcount == 1

        return self._tx(run)

    def refuse(self, command_id: str, result: bytes, now_ms: int) -> bool:
        """Journal a command that cannot even be read as finished with `result` (if new)."""

        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO command (id, received_ms, expires_at, body, state, result)"
                " VALUES (?, ?, ?, x'', 'finished', ?)",
                (command_id, now_ms, now_ms, result),
            )
            return cur.rowcount == 1

        return self._tx(run)

    def queued(self) -> list[JournalEntry]:
        """Commands received and not started, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, body, state, result FROM command WHERE state = 'queued'"
                " ORDER BY received_ms, rowid"
            ).fetchall()
        return [JournalEntry(*r) for r in rows]

    def interrupted(self) -> list[JournalEntry]:
        """Commands started and never finished (the agent stopped in the middle)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, body, state, result FROM command WHERE state = 'running'"
            ).fetchall()
        return [JournalEntry(*r) for r in rows]

    def start(self, command_id: str) -> bool:
        """Mark a queued command running (committed before the device is touched)."""
        return self._tx(
            lambda conn: (
                conn.execute(
                    "UPDATE command SET state = 'running' WHERE id = ? AND state = 'queued'",
                    (command_id,),
                ).rowcount
                == 1
            )
        )

    def finish(self, command_id: str, result: bytes) -> None:
        """Record a command's result, to be sent."""
        self._tx(
            lambda conn: conn.execute(
                "UPDATE command SET state = 'finished', result = ?, sent = 0 WHERE id = ?",
                (result, command_id),
            )
        )

    def get(self, command_id: str) -> JournalEntry | None:
        """One journalled command."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, body, state, result FROM command WHERE id = ?", (command_id,)
            ).fetchone()
        return None if row is None else JournalEntry(*row)

    def resend(self, command_id: str) -> None:
        """Send a finished command's result again (the hub asked again: a duplicate delivery)."""
        self._tx(
            lambda conn: conn.execute(
                "UPDATE command SET sent = 0 WHERE id = ? AND state = 'finished'", (command_id,)
            )
        )

    def unsent(self, limit: int = 100) -> list[tuple[str, bytes]]:
        """(id, result) of finished commands whose result the broker does not have yet."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, result FROM command WHERE sent = 0 AND state = 'finished'"
                " ORDER BY rowid LIMIT ?",
                (limit,),
            ).fetchall()
        return [(str(i), bytes(r)) for i, r in rows]

    def sent(self, command_id: str, now_ms: int) -> None:
        """The broker has the result; forget ids long past their expiry."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE command SET sent = 1 WHERE id = ?", (command_id,))
            conn.execute(
                "DELETE FROM command WHERE sent = 1 AND state = 'finished' AND expires_at < ?",
                (now_ms - _KEEP_MS,),
            )

        self._tx(run)
