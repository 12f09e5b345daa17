"""The hub's exceptions, grouped by what the caller does next (house style §6).

```
MillstreamHubError              root: catch this to catch anything the hub raises on purpose
├── ConfigError                 fatal: print every problem, exit 1, nothing runs
├── SchemaError                 fatal at start-up: the database is not at the expected migration
├── StorageUnavailable          transient: keep the batch, stop acknowledging, retry with backoff
├── StorageRejected             the database refused this data: write messages one by one and
│                               dead-letter the refused ones: one bad value never blocks ingest
└── BridgeUnavailable           Kafka or Redis is down: ingest carries on; the bridge retries
    ├── KafkaUnavailable        with backoff (the outbox grows) / live views degrade
    ├── KafkaTopicsMissing      the relay's topics do not exist: run `millstream-hub kafka init`
    └── LiveUnavailable         Redis cannot be reached for latest values / live updates
```

Invalid input is not an exception at this level: `wire.PayloadError` is caught at the ingest
boundary and turned into a dead letter, so no message can crash the hub. Storage backends map
asyncpg / sqlite3 failures to `StorageUnavailable` and chain the original (`from exc`).
"""

from __future__ import annotations

from millstream_common.config import ConfigProblem

__all__ = [
    "BridgeUnavailable",
    "ConfigError",
    "ConfigProblem",
    "KafkaTopicsMissing",
    "KafkaUnavailable",
    "LiveUnavailable",
    "MillstreamHubError",
    "SchemaError",
    "StorageRejected",
    "StorageUnavailable",
]


class MillstreamHubError(Exception):
    """Root of every exception the hub raises on purpose."""


class ConfigError(MillstreamHubError):
    """Fatal: the configuration cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SchemaError(MillstreamHubError):
    """Fatal: the database schema is missing or older/newer than this hub expects."""


class StorageUnavailable(MillstreamHubError):  # noqa: N818 -- names the state, as callers say it
    """Transient: the storage backend cannot be reached or refused the write; retry later."""


class StorageRejected(MillstreamHubError):  # noqa: N818 -- names the outcome, as callers say it
    """The backend refused the data itself (e.g. a value it cannot store); retrying won't help."""


class BridgeUnavailable(MillstreamHubError):  # noqa: N818 -- names the state, as callers say it
    """Kafka or Redis cannot be used right now; ingest carries on and the bridge retries."""


class KafkaUnavailable(BridgeUnavailable):
    """Kafka did not answer or failed a transaction; the relay backs off and resumes."""


class KafkaTopicsMissing(BridgeUnavailable):
    """The relay's topics do not exist; `millstream-hub kafka init` creates them."""


class LiveUnavailable(BridgeUnavailable):
    """Redis cannot be reached for latest values or live updates."""
