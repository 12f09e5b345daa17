-- SQLite (the demo): as the PostgreSQL migration.
CREATE TABLE agent_configs (
    agent_id   TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    files      TEXT    NOT NULL,  -- JSON: {"agent.yaml": "...", "profile.yaml": "..."}
    comment    TEXT    NOT NULL DEFAULT '',
    pushed_by  TEXT    NOT NULL,
    pushed_at  INTEGER NOT NULL,
    command_id TEXT    NOT NULL REFERENCES commands (id),
    PRIMARY KEY (agent_id, version)
);
