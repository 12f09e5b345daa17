"""Sparkplug B 3.0, the industrial MQTT dialect, as far as Millstream speaks it (docs/sparkplug.md).

topics.py  spBv1.0 topics, STATE and commands; ids → site/line/machine, metric names → tags
schema.py  the Tahu protobuf schema, built from a descriptor (no generated code)
codec.py   payload bytes ⇄ SpbPayload / SpbMetric
"""

from wire.sparkplug.codec import (
    DATATYPES,
    QUALITY_PROPERTY,
    SpbMetric,
    SpbPayload,
    datatype_of,
    decode,
    encode,
)
from wire.sparkplug.topics import (
    NAMESPACE,
    SpbKind,
    SpbNaming,
    SpbTopic,
    command_topic,
    parse_topic,
    segment,
    state_topic,
    subscriptions,
    tag_name,
)

__all__ = [
    "DATATYPES",
    "NAMESPACE",
    "QUALITY_PROPERTY",
    "SpbKind",
    "SpbMetric",
    "SpbNaming",
    "SpbPayload",
    "SpbTopic",
    "command_topic",
    "datatype_of",
    "decode",
    "encode",
    "parse_topic",
    "segment",
    "state_topic",
    "subscriptions",
    "tag_name",
]
