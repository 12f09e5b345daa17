"""Read what can be read from a buffer file, damaged or not (export, import of a set-aside file).

The healthy path is one query. When the file is damaged, each chunk is read on its own, and the
ones SQLite cannot give back (or whose body does not decode) are skipped and counted, so a
damaged buffer yields every intact reading instead of nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge_agent.buffer.readings import Reading, decode_body

__all__ = ["Salvage", "read_chunks"]


@dataclass
class Salvage:
    """What a read got: chunks read, chunks skipped as damaged, and why the rest failed."""

    chunks: int = 0
    damaged: int = 0
    error: str | None = None  # set when even the list of chunks could not be read


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    conn.execute("PRAGMA query_only=1")
    return conn


def read_chunks(path: Path, report: Salvage) -> Iterator[tuple[str, list[Reading]]]:
    """(device, readings) of every chunk of the buffer at `path` that can be read, in order."""
    try:
        conn = _connect(path)
    except sqlite3.Error as exc:
        report.error = f"cannot open {path}: {exc}"
        return
    try:
        last = 0
        try:
            for cid, device, body in conn.execute("SELECT id, device, body FROM chunk ORDER BY id"):
                readings = _decode(body, report)
                last = cid
                if readings is not None:
                    report.chunks += 1
                    yield device, readings
        except sqlite3.DatabaseError:
            ids = _ids(conn, last, report)  # damaged: chunk by chunk from where the scan stopped
        else:
            ids = []
        for cid in ids:
            try:
                row = conn.execute("SELECT device, body FROM chunk WHERE id=?", (cid,)).fetchone()
            except sqlite3.DatabaseError:
                report.damaged += 1
                continue
            if row is None:
                continue
            readings = _decode(row[1], report)
            if readings is not None:
                report.chunks += 1
                yield row[0], readings
    finally:
        conn.close()


def _ids(conn: sqlite3.Connection, after: int, report: Salvage) -> list[int]:
    """Chunk ids past `after`: from the table's index, else every id up to its largest."""
    for sql in (
        "SELECT id FROM chunk WHERE id > ? ORDER BY id",
        "SELECT rowid FROM chunk INDEXED BY chunk_first_ts WHERE rowid > ?",
    ):
        try:
            return sorted(r[0] for r in conn.execute(sql, (after,)))
        except sqlite3.DatabaseError:
            continue
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='chunk'").fetchone()
    except sqlite3.DatabaseError as exc:
        report.error = f"the list of chunks is unreadable ({exc})"
        return []
    return list(range(after + 1, int(row[0]) + 1)) if row else []


def _decode(body: object, report: Salvage) -> list[Reading] | None:
    if isinstance(body, bytes):
        try:
            return decode_body(body)
        except (ValueError, TypeError, KeyError):
            pass
    report.damaged += 1
    return None
