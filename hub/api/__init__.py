"""HTTP API: health probes and Prometheus metrics (later issues add /api/v1)."""

from hub.api.app import HealthSource, create_app

__all__ = ["HealthSource", "create_app"]
