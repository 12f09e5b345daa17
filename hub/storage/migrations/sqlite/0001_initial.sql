-- Millstream hub schema v1 (SQLite): the PostgreSQL tables minus partitioning.
-- Timestamps are epoch milliseconds UTC; see the PostgreSQL migration for column meanings.

CREATE TABLE series (
    id         INTEGER PRIMARY KEY,
    site       TEXT NOT NULL,
    line       TEXT NOT NULL,
    machine    TEXT NOT NULL,
    tag        TEXT NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    UNIQUE (site, line, machine, tag)
);

CREATE TABLE readings (
    series_id  INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    value      REAL,
    value_text TEXT,
    quality    INTEGER NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;

CREATE TABLE rollup_minute (
    series_id  INTEGER NOT NULL,
    bucket     INTEGER NOT NULL,
    min        REAL NOT NULL,
    max        REAL NOT NULL,
    sum        REAL NOT NULL,
    count      INTEGER NOT NULL,
    last_ts    INTEGER NOT NULL,
    last_value REAL NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;

CREATE TABLE rollup_hour (
    series_id  INTEGER NOT NULL,
    bucket     INTEGER NOT NULL,
    min        REAL NOT NULL,
    max        REAL NOT NULL,
    sum        REAL NOT NULL,
    count      INTEGER NOT NULL,
    last_ts    INTEGER NOT NULL,
    last_value REAL NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;

CREATE TABLE dead_letters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at  INTEGER NOT NULL,
    topic        TEXT NOT NULL,
    payload      BLOB NOT NULL,
    payload_size INTEGER NOT NULL,
    reason       TEXT NOT NULL,
    message      TEXT NOT NULL,
    src          TEXT
);
CREATE INDEX dead_letters_received_at ON dead_letters (received_at);
CREATE INDEX dead_letters_reason ON dead_letters (reason, received_at);

CREATE TABLE machines (
    site        TEXT NOT NULL,
    line        TEXT NOT NULL,
    machine     TEXT NOT NULL,
    state       TEXT NOT NULL,
    status_ts   INTEGER,
    detail      TEXT,
    payload     TEXT NOT NULL,
    last_seen   INTEGER NOT NULL,
    PRIMARY KEY (site, line, machine)
);

CREATE TABLE agents (
    agent_id     TEXT PRIMARY KEY,
    state        TEXT NOT NULL,
    status_ts    INTEGER,
    version      TEXT,
    buffer_depth INTEGER,
    drops        INTEGER,
    payload      TEXT NOT NULL,
    last_seen    INTEGER NOT NULL
);
