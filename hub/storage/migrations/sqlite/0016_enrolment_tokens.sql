-- SQLite (the demo): as the PostgreSQL migration.
CREATE TABLE enrolment_tokens (
    digest     TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL REFERENCES broker_identities (name) ON DELETE CASCADE,
    broker_url TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    used_by    TEXT
);
CREATE INDEX enrolment_tokens_name ON enrolment_tokens (name);
