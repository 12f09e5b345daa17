-- SQLite (the demo): as the PostgreSQL migration.
CREATE TABLE machine_events (
    site        TEXT    NOT NULL,
    line        TEXT    NOT NULL,
    machine     TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    ts          INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    severity    INTEGER NOT NULL,
    message     TEXT    NOT NULL DEFAULT '',
    state       TEXT,
    fields      TEXT    NOT NULL DEFAULT '{}',
    src         TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (site, line, machine, event_id, ts)
);
CREATE INDEX machine_events_recent ON machine_events (ts DESC);
CREATE INDEX machine_events_machine ON machine_events (site, line, machine, ts DESC);
