-- Readings each machine's agent says it produced per minute (of reading timestamp), from the
-- `produced` lists of agent statuses. A minute is reported many times with a growing count, so
-- the ingest keeps the greatest; completeness uses it as `expected` (docs/api.md).
CREATE TABLE produced_minutes (
    site       text   NOT NULL,
    line       text   NOT NULL,
    machine    text   NOT NULL,
    minute     bigint NOT NULL,  -- epoch ms of the minute's start
    produced   bigint NOT NULL,
    agent_id   text   NOT NULL,  -- the agent that reported the count kept
    updated_at bigint NOT NULL,  -- epoch ms the hub received that status
    PRIMARY KEY (site, line, machine, minute)
);
-- Retention deletes by minute across every machine.
CREATE INDEX produced_minutes_minute ON produced_minutes (minute);
