-- Readings each machine's agent says it produced per minute (SQLite); see the PostgreSQL
-- migration for meanings.
CREATE TABLE produced_minutes (
    site       TEXT    NOT NULL,
    line       TEXT    NOT NULL,
    machine    TEXT    NOT NULL,
    minute     INTEGER NOT NULL,
    produced   INTEGER NOT NULL,
    agent_id   TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (site, line, machine, minute)
);
CREATE INDEX produced_minutes_minute ON produced_minutes (minute);
