-- Why a machine's readings are missing (SQLite); see the PostgreSQL migration.
CREATE TABLE machine_outages (
    site     TEXT    NOT NULL,
    line     TEXT    NOT NULL,
    machine  TEXT    NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('device', 'agent', 'drop')),
    reason   TEXT    NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms   INTEGER,
    PRIMARY KEY (site, line, machine, kind, start_ms)
) WITHOUT ROWID;

ALTER TABLE machine_meta ADD COLUMN scheduled_per_minute REAL;
