"""MQTT publisher: QoS 1 batches from the buffer, deleted on the hub's receipt.

Pure parts: `ratelimit`, `stats`; reconnect delays come from `millstream_common.backoff`.
I/O: `publisher` (aiomqtt). `contract` is the
Protocol the runtime fills with the `wire` package; `settings` maps the `mqtt` config section.
"""

from edge_agent.publish.contract import Contract
from edge_agent.publish.publisher import Publisher
from edge_agent.publish.settings import PublisherSettings
from edge_agent.publish.stats import PublishStats, Rate
from millstream_common.ratelimit import TokenBucket

__all__ = [
    "Contract",
    "PublishStats",
    "Publisher",
    "PublisherSettings",
    "Rate",
    "TokenBucket",
]
