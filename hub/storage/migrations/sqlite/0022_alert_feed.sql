-- Alert evaluation on SQLite (the demo, a single hub instance; docs/alerts.md): the feed each
-- ingest transaction writes, the evaluator's checkpoint, the notification queue, and the rules
-- and shelves the API manages, as in PostgreSQL (0010, 0019). SQLite has one writer at a time,
-- so the feed's id order is commit order without any lock; AUTOINCREMENT keeps ids rising after
-- the evaluator deletes what its checkpoint covers (a reused id would fall behind its cursor).
CREATE TABLE alert_feed (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    kind       INTEGER NOT NULL DEFAULT 0,
    site       TEXT NOT NULL,
    line       TEXT NOT NULL,
    machine    TEXT NOT NULL,
    n          INTEGER NOT NULL,
    body       TEXT NOT NULL
);

CREATE TABLE alert_checkpoint (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    cursor   INTEGER NOT NULL,
    state    BLOB NOT NULL,
    saved_at INTEGER NOT NULL
);

CREATE TABLE alert_notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id   TEXT NOT NULL,
    state      TEXT NOT NULL,
    notifier   TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_ms    INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    UNIQUE (alert_id, state, notifier)
);

CREATE TABLE alert_rules (
    name       TEXT PRIMARY KEY,
    body       TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);

CREATE TABLE alert_shelves (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    rule       TEXT,
    site       TEXT,
    line       TEXT,
    machine    TEXT,
    until_ms   INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    by_whom    TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);

CREATE INDEX alerts_open ON alerts (active_ms) WHERE state <> 'cleared';
