"""Ingest: MQTT session → classify (wire) → batched storage commit → PUBACK → receipts."""

from hub.ingest.classify import classify
from hub.ingest.message import Incoming
from hub.ingest.mqtt import MqttSession
from hub.ingest.pipeline import Classified, IngestPipeline

__all__ = ["Classified", "Incoming", "IngestPipeline", "MqttSession", "classify"]
