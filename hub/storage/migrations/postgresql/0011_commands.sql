-- Commands sent to machines through their agents, and what the agents answered: the audit log
-- (docs/commands.md). One row per command; the result columns stay NULL until the answer comes.
CREATE TABLE commands (
    id          text   PRIMARY KEY,  -- the command id (a UUID, lower-case text)
    kind        text   NOT NULL,
    agent_id    text   NOT NULL,
    site        text   NOT NULL,
    line        text   NOT NULL,
    machine     text   NOT NULL,
    tag         text   NOT NULL,
    value       text   NOT NULL,  -- the value asked for, as JSON
    issued_by   text   NOT NULL,
    issued_at   bigint NOT NULL,
    expires_at  bigint NOT NULL,
    status      text   CHECK (status IN ('done', 'refused', 'failed', 'expired')),
    detail      text,
    previous    text,             -- JSON, as the agent read it before writing
    read_back   text,             -- JSON, as the agent read it after writing
    finished_at bigint,           -- the agent's `ts`
    answered_at bigint            -- when the hub received the answer
);
CREATE INDEX commands_recent ON commands (issued_at DESC);
CREATE INDEX commands_machine ON commands (site, line, machine, issued_at DESC);
