-- SQLite (the demo): as the PostgreSQL migration.
-- Commands sent to machines through their agents, and what the agents answered: the audit log
-- (docs/commands.md). One row per command; the result columns stay NULL until the answer comes.
CREATE TABLE commands (
    id          TEXT   PRIMARY KEY,
    kind        TEXT   NOT NULL,
    agent_id    TEXT   NOT NULL,
    site        TEXT   NOT NULL,
    line        TEXT   NOT NULL,
    machine     TEXT   NOT NULL,
    tag         TEXT   NOT NULL,
    value       TEXT   NOT NULL,  -- the value asked for, as JSON
    issued_by   TEXT   NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    status      TEXT   CHECK (status IN ('done', 'refused', 'failed', 'expired')),
    detail      text,
    previous    text,             -- JSON, as the agent read it before writing
    read_back   text,             -- JSON, as the agent read it after writing
    finished_at INTEGER,           -- the agent's `ts`
    answered_at INTEGER            -- when the hub received the answer
);
CREATE INDEX commands_recent ON commands (issued_at DESC);
CREATE INDEX commands_machine ON commands (site, line, machine, issued_at DESC);
