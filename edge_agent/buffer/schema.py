"""Open the buffer database: WAL, synchronous=FULL, schema, and corruption handling at start."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

__all__ = ["SCHEMA_VERSION", "is_disk_full", "open_database"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: chunk.digest

# One row per chunk of readings (a batch as formed by the batcher), not per reading: at 20k+
# readings/s a row per reading costs an index entry and a B-tree insert each; chunks cost one
# per ~100–1000 readings and make deletion on receipt a range delete.
_SCHEMA = """
-- AUTOINCREMENT: ids never come back after the newest rows are deleted, so id order is
-- arrival order for good and the backlog lane can remember how far it has claimed.
CREATE TABLE IF NOT EXISTS chunk (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    n INTEGER NOT NULL,
    nbytes INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    ds INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL,
    seq INTEGER,
    sent_ms INTEGER,
    -- wire.batch_digest of the payload published under `seq`: a receipt deletes the batch only
    -- when it names this digest (docs/wire.md "Receipts").
    digest TEXT
);
CREATE INDEX IF NOT EXISTS chunk_seq ON chunk(seq) WHERE seq IS NOT NULL;
-- The backlog lane gathers one device's unsent chunks; interleaved devices would be a scan.
CREATE INDEX IF NOT EXISTS chunk_unclaimed ON chunk(device, id) WHERE seq IS NULL;
-- The republish check runs on every backlog round; it must not read the rows in flight.
CREATE INDEX IF NOT EXISTS chunk_inflight ON chunk(sent_ms, seq) WHERE seq IS NOT NULL;
-- The age bound deletes by source time; without this index that is a scan of the whole buffer.
CREATE INDEX IF NOT EXISTS chunk_first_ts ON chunk(first_ts);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS drops (
    device TEXT PRIMARY KEY,
    dropped INTEGER NOT NULL DEFAULT 0,
    downsampled INTEGER NOT NULL DEFAULT 0
);
-- The last value of each `event:` tag, committed with the events its changes made: after a
-- restart (even kill -9) the first reading is compared with it, so an edge is neither lost nor
-- reported twice.
CREATE TABLE IF NOT EXISTS event_state (
    device TEXT NOT NULL,
    tag TEXT NOT NULL,
    value TEXT NOT NULL,  -- JSON
    PRIMARY KEY (device, tag)
);
"""


def is_disk_full(exc: BaseException) -> bool:
    """True for SQLite's "database or disk is full" (SQLITE_FULL)."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    return False


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: the writer issues BEGIN/COMMIT itself to control group commit.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed group survives power loss, the promise in ARCHITECTURE.md §delivery.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA cache_size=-8000")  # 8 MB page cache keeps RSS flat for any backlog
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA journal_size_limit=67108864")
    return conn


def _check(conn: sqlite3.Connection) -> str | None:
    """Return why the database is unusable, or None."""
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    if rows != [("ok",)]:
        return "; ".join(str(r[0]) for r in rows[:5])
    return None


def _move_aside(path: Path, reason: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            src.rename(Path(str(target) + suffix))
    # Loud on purpose: an operator must see that buffered data was set aside, and where.
    log.error(
        "BUFFER CORRUPT: %s is unreadable (%s); moved it to %s and started an empty buffer. "
        "Readings in the moved file were NOT published; keep it for recovery.",
        path,
        reason,
        target,
    )
    return target


def open_database(path: Path, *, now_ms: int) -> tuple[sqlite3.Connection, Path | None]:
    """Open (creating or recovering) the buffer; return the connection and any moved-aside file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    moved: Path | None = None
    _say_if_emptied(path)
    # Looked at before connecting: opening the database makes a new, empty one.
    had_wal = Path(f"{path}-wal").exists()
    try:
        conn = _connect(path)
        problem = _check(conn)
    except sqlite3.DatabaseError as exc:
        conn, problem = None, str(exc)
    if problem is not None:
        if conn is not None:
            conn.close()
        moved = _move_aside(path, problem)
        conn = _connect(path)
    assert conn is not None
    try:
        _prepare(conn, now_ms)
    except sqlite3.Error as exc:
        # A buffer that exists can go on from a full disk (reads need no space, and the disk
        # reserve makes room); one that cannot even be created cannot.
        if not is_disk_full(exc) or not _tables(conn) >= {"chunk", "meta", "drops"}:
            raise
        log.error("the disk of %s is full: starting on the buffer as it is (%s)", path, exc)  # noqa: TRY400 -- the reason is the story, not a traceback
    _mark_open(conn, path, had_wal)
    return conn, moved


def _say_if_emptied(path: Path) -> None:
    """A zero-length buffer file is not a new buffer: whatever it held is gone. Say so."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        log.error(
            "BUFFER EMPTIED: %s is a zero-length file. If the agent ran here before, the "
            "readings it held are gone (a crash of the filesystem, or the file was truncated); "
            "look for a backup or a set-aside buffer.db.corrupt-* next to it "
            "(edge-agent buffer import). Starting an empty buffer.",
            path,
        )


def _mark_open(conn: sqlite3.Connection, path: Path, had_wal: bool) -> None:
    """Note that the buffer is open (cleared on a clean close) and say if the last run ended
    without closing it and its -wal file is gone: the newest committed readings live there."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='open'").fetchone()
        if row is not None and row[0] == 1 and not had_wal:
            log.error(
                "BUFFER WAL MISSING: the agent did not close %s cleanly last time and its "
                "write-ahead log %s-wal is gone (deleted or lost): readings committed in the "
                "last moments before that stop are lost. Never delete the -wal file of a "
                "buffer; stop the agent first (edge-agent buffer purge empties it safely).",
                path,
                path,
            )
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('open', 1)")
        # Into the database file itself, not only the -wal: the mark must outlive the -wal.
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error as exc:
        if not is_disk_full(exc):
            raise


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _prepare(conn: sqlite3.Connection, now_ms: int) -> None:
    """Schema and meta rows; writes nothing when the buffer is already up to date."""
    conn.executescript(_SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(chunk)")}
    if "digest" not in columns:
        # A version-1 buffer: its claimed batches get their digest when they are sent again
        # (every claimed batch is republished at start).
        conn.execute("ALTER TABLE chunk ADD COLUMN digest TEXT")
    row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    if row is None or row[0] != SCHEMA_VERSION:
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
    # A new (or recovered, or wiped) buffer has no seq ceiling; starting from the clock keeps seq
    # strictly increasing for this agent even then (an agent sends far fewer than 1000 batches/s).
    if conn.execute("SELECT 1 FROM meta WHERE key='seq_ceiling'").fetchone() is None:
        conn.execute("INSERT INTO meta VALUES ('seq_ceiling', ?)", (max(1, now_ms),))
