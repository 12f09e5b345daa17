-- SQLite (the demo): as the PostgreSQL migration.
CREATE TABLE broker_identities (
    name       TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL CHECK (kind IN ('device', 'agent')),
    site       TEXT    NOT NULL,
    line       TEXT    NOT NULL,
    machines   TEXT    NOT NULL,
    src        TEXT    NOT NULL,
    disabled   BOOLEAN NOT NULL DEFAULT false,
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
