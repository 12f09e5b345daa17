-- Alerts (docs/alerts.md).
--
-- alert_feed: the readings each ingest transaction inserted, one row per telemetry batch, in
-- commit order (ids are handed out under an advisory lock held to commit, as for the Kafka
-- outbox), so the one active evaluator reads every committed reading once, in order. Rows up
-- to the evaluator's checkpoint are deleted.
CREATE TABLE alert_feed (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000)::bigint,
    site       text NOT NULL,
    line       text NOT NULL,
    machine    text NOT NULL,
    n          integer NOT NULL,
    body       text NOT NULL  -- the Kafka outbox's body format (hub/bridge/kafka/records.py)
);

-- The evaluator's checkpoint: the last feed id it has evaluated and the engine's state then
-- (zlib-compressed JSON). A new evaluator resumes from here; replaying the feed from a
-- checkpoint yields the same occurrence ids, so nothing is recorded or notified twice.
CREATE TABLE alert_checkpoint (
    id       smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    cursor   bigint NOT NULL,
    state    bytea NOT NULL,
    saved_at bigint NOT NULL
);

-- One row per occurrence: what fired, where, and its current state.
CREATE TABLE alerts (
    id            uuid PRIMARY KEY,
    rule          text NOT NULL,
    kind          text NOT NULL,
    severity      text NOT NULL,
    site          text NOT NULL,
    line          text NOT NULL,
    machine       text NOT NULL,
    tag           text NOT NULL,
    state         text NOT NULL CHECK (state IN ('active', 'acknowledged', 'cleared')),
    value         double precision,
    detail        text NOT NULL DEFAULT '',
    active_ms     bigint NOT NULL,
    acked_ms      bigint,
    acked_by      text,
    ack_comment   text,
    cleared_ms    bigint,
    cleared_value double precision,
    found_late    boolean NOT NULL DEFAULT false,
    recorded_ms   bigint NOT NULL
);
CREATE INDEX alerts_open ON alerts (active_ms) WHERE state <> 'cleared';
CREATE INDEX alerts_history ON alerts (active_ms DESC);

-- Every transition with who and when: active and cleared by the evaluator, acknowledged by
-- an operator. One row per (occurrence, state): recording a transition twice is a no-op.
CREATE TABLE alert_transitions (
    alert_id    uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    state       text NOT NULL CHECK (state IN ('active', 'acknowledged', 'cleared')),
    ts          bigint NOT NULL,
    value       double precision,
    by_whom     text NOT NULL,
    comment     text,
    recorded_ms bigint NOT NULL,
    PRIMARY KEY (alert_id, state)
);

-- Notifications still to deliver: one per (transition, notifier), written in the transaction
-- that records the transition and deleted when the notifier has it (at least once). The body
-- is built at delivery from the occurrence and its transition.
CREATE TABLE alert_notifications (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id  uuid NOT NULL,
    state     text NOT NULL,
    notifier  text NOT NULL,
    attempts  integer NOT NULL DEFAULT 0,
    next_ms   bigint NOT NULL DEFAULT 0,
    last_error text,
    UNIQUE (alert_id, state, notifier)
);

-- Rules admins manage through the API (docs/alerts.md "API"), beside those of the hub config:
-- the rule as JSON, validated like the config's. The evaluator reloads them when they change.
CREATE TABLE alert_rules (
    name       text PRIMARY KEY,
    body       text NOT NULL,
    updated_by text NOT NULL,
    updated_ms bigint NOT NULL
);

-- Shelving: a rule, or every rule on some machines, silenced until `until_ms` (maintenance).
-- Transitions are still recorded; nobody is notified. NULL patterns match everything.
CREATE TABLE alert_shelves (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule       text,
    site       text,
    line       text,
    machine    text,
    until_ms   bigint NOT NULL,
    reason     text NOT NULL,
    by_whom    text NOT NULL,
    created_ms bigint NOT NULL
);

-- A tag's plausible range from its device profile (wire meta `limits`): threshold alerts on
-- every machine using the profile, unless a rule of the config or the API covers the series.
ALTER TABLE tag_meta ADD COLUMN limit_low double precision, ADD COLUMN limit_high double precision;
