-- The Kafka outbox (docs/kafka.md): one row per committed telemetry batch or dead letter, written
-- in the ingest transaction and drained in id order by the relay, which deletes what Kafka holds.
-- Ids are handed out under an advisory lock held to commit, so id order is commit order and a
-- relay reading `id > cursor` can never skip a row that commits late.
CREATE TABLE kafka_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- epoch ms of the ingest transaction: the relay's lag is measured from here
    created_at bigint NOT NULL DEFAULT (extract(epoch FROM now()) * 1000)::bigint,
    kind       smallint NOT NULL,  -- 0 telemetry batch, 1 dead letter
    site       text,
    line       text,
    machine    text,
    src        text,
    seq        bigint,
    n          integer NOT NULL,   -- Kafka records this row becomes
    -- telemetry: JSON [[tag, ts, v, q], …] of the readings this transaction inserted, in ts order;
    -- dead letter: a JSON object (see docs/kafka.md)
    body       text NOT NULL
);
