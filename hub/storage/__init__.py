"""Storage: the system of record behind one `Storage` protocol (PostgreSQL or SQLite)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from hub.storage.model import (
    AgentStatusUpdate,
    CommandResultUpdate,
    CompactReading,
    DeadLetter,
    EventBatch,
    EventRow,
    MachineMetaUpdate,
    MachineStatusUpdate,
    RollupRow,
    SeriesKey,
    SparkplugBirth,
    StoredReading,
    TelemetryBatch,
    WriteBatch,
    WriteResult,
)
from hub.storage.postgres import PostgresStorage, TransactionHook
from hub.storage.protocol import Storage
from hub.storage.sqlite import SqliteHook, SqliteStorage

__all__ = [
    "AgentStatusUpdate",
    "CommandResultUpdate",
    "CompactReading",
    "DeadLetter",
    "EventBatch",
    "EventRow",
    "MachineMetaUpdate",
    "MachineStatusUpdate",
    "PostgresStorage",
    "RollupRow",
    "SeriesKey",
    "SparkplugBirth",
    "SqliteHook",
    "SqliteStorage",
    "Storage",
    "StoredReading",
    "TelemetryBatch",
    "TransactionHook",
    "WriteBatch",
    "WriteResult",
    "open_storage",
]


def open_storage(
    url: str,
    *,
    retention_days: int = 90,
    dead_letter_retention_days: int = 30,
    hooks: Sequence[TransactionHook] = (),
    sqlite_hooks: Sequence[SqliteHook] = (),
) -> Storage:
    """Pick the backend from the URL: `postgresql://…` or `sqlite:///path` (an async CM).
    `hooks` run in PostgreSQL's ingest transactions, `sqlite_hooks` in SQLite's."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        if hooks:
            raise ValueError("transaction hooks (the Kafka outbox) need PostgreSQL storage")
        # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy spells them.
        return SqliteStorage(
            url.removeprefix("sqlite:///"),
            retention_days=retention_days,
            dead_letter_retention_days=dead_letter_retention_days,
            hooks=sqlite_hooks,
        )
    return PostgresStorage(
        url.replace("postgres://", "postgresql://", 1),
        retention_days=retention_days,
        dead_letter_retention_days=dead_letter_retention_days,
        hooks=hooks,
    )
