-- Tracing (docs/tracing.md): the W3C traceparent of the hub span that wrote a telemetry row, so
-- the relay continues the batch's trace when it produces to Kafka. NULL when the hub does not
-- trace (and for every other kind of row).
ALTER TABLE kafka_outbox ADD COLUMN trace text;
