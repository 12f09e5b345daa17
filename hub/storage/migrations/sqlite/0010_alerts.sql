-- Alerts (SQLite, the demo); see the PostgreSQL migration. The demo keeps occurrences and
-- transitions; the feed, checkpoint and notification queue are PostgreSQL's.
CREATE TABLE alerts (
    id            TEXT PRIMARY KEY,
    rule          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    severity      TEXT NOT NULL,
    site          TEXT NOT NULL,
    line          TEXT NOT NULL,
    machine       TEXT NOT NULL,
    tag           TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('active', 'acknowledged', 'cleared')),
    value         REAL,
    detail        TEXT NOT NULL DEFAULT '',
    active_ms     INTEGER NOT NULL,
    acked_ms      INTEGER,
    acked_by      TEXT,
    ack_comment   TEXT,
    cleared_ms    INTEGER,
    cleared_value REAL,
    found_late    INTEGER NOT NULL DEFAULT 0,
    recorded_ms   INTEGER NOT NULL
);
CREATE INDEX alerts_history ON alerts (active_ms DESC);

CREATE TABLE alert_transitions (
    alert_id    TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    state       TEXT NOT NULL CHECK (state IN ('active', 'acknowledged', 'cleared')),
    ts          INTEGER NOT NULL,
    value       REAL,
    by_whom     TEXT NOT NULL,
    comment     TEXT,
    recorded_ms INTEGER NOT NULL,
    PRIMARY KEY (alert_id, state)
) WITHOUT ROWID;

ALTER TABLE tag_meta ADD COLUMN limit_low REAL;
ALTER TABLE tag_meta ADD COLUMN limit_high REAL;
