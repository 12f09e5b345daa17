"""HTTP API: health probes, Prometheus metrics and the v1 REST API (`v1/`)."""

from hub.api.app import HealthSource, create_app

__all__ = ["HealthSource", "create_app"]
