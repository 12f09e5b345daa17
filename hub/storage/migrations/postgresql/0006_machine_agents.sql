-- Which agent polls which machine, from the `site`, `line` and `devices` of agent statuses
-- (docs/wire.md "Agent status"). Kept when the agent goes offline (its last will names no
-- machines), so the API can say "agent X is offline" of exactly its machines.
CREATE TABLE machine_agents (
    site       text   NOT NULL,
    line       text   NOT NULL,
    machine    text   NOT NULL,
    agent_id   text   NOT NULL,
    updated_at bigint NOT NULL,  -- epoch ms the hub received the status that named it
    PRIMARY KEY (site, line, machine)
);
