"""Bridges from committed data to the world: Kafka (exactly-once feed) and Redis (live views).

kafka/   outbox written in the ingest transaction, transactional relay, topic admin
redis/   latest value per series and per-batch live updates over pub/sub
wiring   `Bridges`: what the hub runtime starts from its config
"""

from hub.bridge.metrics import BridgeMetrics
from hub.bridge.wiring import Bridges

__all__ = ["BridgeMetrics", "Bridges"]
