"""Redis bridge: latest value per series and live updates fanned out to every hub instance.

model.py  coalescing and encodings (pure)
live.py   `RedisLive`: the writer, the subscriber, `subscribe_updates()` and `latest()`
"""

from hub.bridge.redis.live import RedisLive
from hub.bridge.redis.model import Latest, Update

__all__ = ["Latest", "RedisLive", "Update"]
