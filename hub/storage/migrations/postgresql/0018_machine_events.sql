-- Machine events (docs/events.md): alarms and conditions a machine raises, published on
-- ms/v1/{site}/{line}/{machine}/events. An event's identity is its occurrence id and its ts, so
-- every transition of one alarm (active, acked, cleared) is a row, and a batch sent again is
-- stored once.
CREATE TABLE machine_events (
    site        text     NOT NULL,
    line        text     NOT NULL,
    machine     text     NOT NULL,
    event_id    text     NOT NULL,
    ts          bigint   NOT NULL,
    source      text     NOT NULL,
    type        text     NOT NULL,
    severity    smallint NOT NULL CHECK (severity BETWEEN 1 AND 1000),
    message     text     NOT NULL DEFAULT '',
    state       text     CHECK (state IN ('active', 'acked', 'confirmed', 'cleared')),
    fields      text     NOT NULL DEFAULT '{}',  -- JSON object
    src         text     NOT NULL,
    received_at bigint   NOT NULL,
    PRIMARY KEY (site, line, machine, event_id, ts)
);
CREATE INDEX machine_events_recent ON machine_events (ts DESC);
CREATE INDEX machine_events_machine ON machine_events (site, line, machine, ts DESC);
