-- Event rules (docs/alerts.md "Event rules"): the alert feed also carries the machine events
-- each ingest transaction stored, so the one evaluator judges them in commit order too.
-- kind 0: a telemetry batch's new readings; 1: an events batch's new events (one JSON object
-- per line, the Kafka outbox's event body).
ALTER TABLE alert_feed ADD COLUMN kind smallint NOT NULL DEFAULT 0;
