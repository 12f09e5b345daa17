"""Millstream hub: MQTT ingest into PostgreSQL, Kafka bridge, Redis fan-out, API and dashboard."""

__all__ = ["__version__"]

__version__ = "0.1.0"
