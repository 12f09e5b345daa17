"""Millstream edge agent: reads machines, buffers every reading, publishes batches over MQTT."""

__all__ = ["__version__"]

__version__ = "0.1.0"
