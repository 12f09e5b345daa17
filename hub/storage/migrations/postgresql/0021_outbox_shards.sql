-- The outbox without a global lock (docs/kafka.md "Shards and relays"). Rows were numbered under
-- one advisory lock held from the insert to commit, so that id order was commit order: every
-- ingest transaction of every hub instance queued behind the previous one's commit. Now:
--
-- * `xid` is the writing transaction's id. A relay reads only rows whose transaction ended
--   before every transaction still running began (below the snapshot's xmin), in (xid, id)
--   order: no row can ever commit behind what it has read, and writers take no lock at all.
-- * `shard` splits the outbox by machine (a hash of site/line/machine; dead letters by src), so
--   that several relays relay in parallel, each shard in order, with its own Kafka producer and
--   cursor. The count is chosen here and changed with `millstream-hub kafka shards` (when the
--   outbox is empty, see docs/kafka.md).
CREATE TABLE kafka_outbox_settings (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    shards integer NOT NULL CHECK (shards BETWEEN 1 AND 256)
);
INSERT INTO kafka_outbox_settings (shards) VALUES (8);

-- Rows written before this migration: shard 0, xid 0 (the relay's previous cursor covers them).
ALTER TABLE kafka_outbox ADD COLUMN shard smallint NOT NULL DEFAULT 0;
ALTER TABLE kafka_outbox ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE kafka_outbox ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX kafka_outbox_shard_order ON kafka_outbox (shard, xid, id);
