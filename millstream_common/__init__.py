"""What the edge agent and the hub share besides the wire contract: standard library only (plus
PyYAML for environment values and pydantic for config sections), so the agent's install stays
lean.

- `backoff`: reconnect delays for every peer (PLCs, brokers, databases, Kafka, Redis).
- `ratelimit`: the token bucket (the agent's backlog pace, the hub's request limits).
- `logjson`: one JSON object per log line, with every known secret redacted.
- `config`: `ConfigProblem` (one thing wrong in a config, located) and `MILLSTREAM_…`
  environment overrides; `locs` names a place in a config document.
- `tracing`: the `tracing:` config section, W3C trace context and sampling (pure); `otel` the
  OpenTelemetry SDK behind it, imported only when tracing is on (docs/tracing.md).
"""
