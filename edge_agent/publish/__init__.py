"""MQTT publisher: QoS 1 batches from the buffer, deleted on the hub's receipt.

Pure parts: `backoff`, `ratelimit`, `stats`. I/O: `publisher` (aiomqtt). `contract` is the
Protocol the runtime fills with the `wire` package; `settings` maps the `mqtt` config section.
"""

from edge_agent.publish.backoff import backoff_delay
from edge_agent.publish.contract import Contract
from edge_agent.publish.publisher import Publisher
from edge_agent.publish.ratelimit import TokenBucket
from edge_agent.publish.settings import PublisherSettings
from edge_agent.publish.stats import PublishStats, Rate

__all__ = [
    "Contract",
    "PublishStats",
    "Publisher",
    "PublisherSettings",
    "Rate",
    "TokenBucket",
    "backoff_delay",
]
