-- Which agent polls which machine (SQLite); see the PostgreSQL migration for meanings.
CREATE TABLE machine_agents (
    site       TEXT    NOT NULL,
    line       TEXT    NOT NULL,
    machine    TEXT    NOT NULL,
    agent_id   TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (site, line, machine)
);
