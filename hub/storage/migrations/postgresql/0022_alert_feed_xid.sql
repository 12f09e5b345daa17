-- The alert feed without a global lock (docs/alerts.md "How evaluation stays exact"), as the
-- Kafka outbox in 0021. Feed ids were handed out under one advisory lock held from the insert to
-- commit, so that id order was commit order: every ingest transaction of every hub instance
-- queued behind the previous one's commit. Now each row records its writer's transaction id and
-- the evaluator reads in (xid, id) order, only rows of transactions below the snapshot's xmin
-- (hub/storage/snapshot_order.py): no row can commit behind what it has read, and writers take
-- no lock.
--
-- Rows written before this migration get xid 0 and the checkpoint's cursor id C becomes the
-- position (0, C): old rows past C come first, then every new row (xid > 0), so nothing already
-- evaluated is evaluated again and nothing is skipped. ALTER TABLE waits for the transactions
-- writing the feed to end, so every row with xid 0 has committed.
ALTER TABLE alert_feed ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE alert_feed ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX alert_feed_order ON alert_feed (xid, id);
ALTER TABLE alert_checkpoint ADD COLUMN cursor_xid xid8 NOT NULL DEFAULT '0';
