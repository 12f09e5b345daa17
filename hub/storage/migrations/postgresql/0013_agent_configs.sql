-- Each agent's configuration in versions, as pushed from the hub (docs/commands.md "Remote
-- configuration"). A version is never changed; a rollback pushes an earlier one's files again
-- as a new version. Whether the agent kept it is the answer to its command (commands.status).
CREATE TABLE agent_configs (
    agent_id   text    NOT NULL,
    version    integer NOT NULL,
    files      text    NOT NULL,  -- JSON: {"agent.yaml": "...", "profile.yaml": "..."}
    comment    text    NOT NULL DEFAULT '',
    pushed_by  text    NOT NULL,
    pushed_at  bigint  NOT NULL,
    command_id text    NOT NULL REFERENCES commands (id),
    PRIMARY KEY (agent_id, version)
);
