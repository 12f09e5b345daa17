"""Wire contract v1: what agents and MQTT devices publish and what the hub accepts (pure).

Topics, payload models and codecs shared by the agent, the hub and third-party devices. No I/O and
no clock reads: callers pass `now_ms`. Every parser raises `PayloadError` (with a stable
`.reason`) and nothing else, whatever bytes arrive. The contract is written up in docs/wire.md.

    topics.py      build, parse and subscribe to `ms/v1/...` topics
    models.py      pydantic models: JSON bodies and parsed results
    limits.py      the numbers: readings per batch, payload size, ts window, patterns
    errors.py      PayloadError and its reason codes
    validation.py  bytes → model, pydantic errors → PayloadError
    telemetry.py   parse_telemetry (strict) / parse_telemetry_partial (the hub's) / encode_telemetry
    receipts.py    parse_receipt / encode_receipt / coalesce_seqs / batch_digest
    status.py      machine and agent status codecs
    meta.py        machine tag metadata (units, heartbeats, schedule) codec
    report.py      the agent's full status report (status file, CLI, metrics; cut to the wire)
    commands.py    commands to agents (writes, config) and their results
    sparkplug/     Sparkplug B 3.0: topics, naming, the protobuf payload (imported on its own:
                   it needs protobuf, which the JSON contract does not)
"""

from wire.commands import (
    COMMAND_STATUSES,
    CONFIG_MAIN_FILE,
    Command,
    CommandKind,
    CommandResult,
    CommandStatus,
    ConfigBundle,
    encode_command,
    encode_command_result,
    parse_command,
    parse_command_result,
)
from wire.errors import REASONS, PayloadError, Reason
from wire.limits import (
    MAX_ABS_NUMBER,
    MAX_DESCRIPTION_CHARS,
    MAX_FUTURE_MS,
    MAX_META_TAGS,
    MAX_PAST_MS,
    MAX_PAYLOAD_BYTES,
    MAX_READINGS,
    MAX_SEQ,
    MAX_STRING_BYTES,
    MAX_TS,
    MAX_UNIT_CHARS,
    RESERVED_SITES,
    SEGMENT_PATTERN,
    TAG_PATTERN,
    UUID_PATTERN,
    VERSION,
)
from wire.meta import encode_meta, parse_meta, quiet_ms, scheduled_per_minute
from wire.models import (
    AgentStatus,
    AgentStatusBody,
    DeviceStatus,
    Limits,
    Meta,
    MetaBody,
    Quality,
    Reading,
    Receipt,
    ReceiptBody,
    State,
    Status,
    StatusBody,
    TagMeta,
    Telemetry,
    TelemetryBody,
    Value,
    WriteRange,
)
from wire.receipts import batch_digest, coalesce_seqs, encode_receipt, parse_receipt
from wire.report import AgentReport, BacklogReport, BufferReport, DeviceReport, PublishReport
from wire.status import encode_agent_status, encode_status, parse_agent_status, parse_status
from wire.telemetry import (
    ReadingLike,
    RefusedReading,
    encode_telemetry,
    parse_telemetry,
    parse_telemetry_partial,
    validate_reading,
)
from wire.topics import (
    AGENT_STATUS_FILTER,
    COMMAND_RESULT_FILTER,
    MACHINE_META_FILTER,
    MACHINE_STATUS_FILTER,
    PREFIX,
    TELEMETRY_FILTER,
    AgentTopic,
    MachineTopic,
    ReceiptTopic,
    Topic,
    agent_status_topic,
    check_segment,
    cmd_result_topic,
    cmd_topic,
    meta_topic,
    parse_topic,
    receipt_topic,
    status_topic,
    telemetry_topic,
)

__all__ = [
    "AGENT_STATUS_FILTER",
    "COMMAND_RESULT_FILTER",
    "COMMAND_STATUSES",
    "CONFIG_MAIN_FILE",
    "MACHINE_META_FILTER",
    "MACHINE_STATUS_FILTER",
    "MAX_ABS_NUMBER",
    "MAX_DESCRIPTION_CHARS",
    "MAX_FUTURE_MS",
    "MAX_META_TAGS",
    "MAX_PAST_MS",
    "MAX_PAYLOAD_BYTES",
    "MAX_READINGS",
    "MAX_SEQ",
    "MAX_STRING_BYTES",
    "MAX_TS",
    "MAX_UNIT_CHARS",
    "PREFIX",
    "REASONS",
    "RESERVED_SITES",
    "SEGMENT_PATTERN",
    "TAG_PATTERN",
    "TELEMETRY_FILTER",
    "UUID_PATTERN",
    "VERSION",
    "AgentReport",
    "AgentStatus",
    "AgentStatusBody",
    "AgentTopic",
    "BacklogReport",
    "BufferReport",
    "Command",
    "CommandKind",
    "CommandResult",
    "CommandStatus",
    "ConfigBundle",
    "DeviceReport",
    "DeviceStatus",
    "Limits",
    "MachineTopic",
    "Meta",
    "MetaBody",
    "PayloadError",
    "PublishReport",
    "Quality",
    "Reading",
    "ReadingLike",
    "Reason",
    "Receipt",
    "ReceiptBody",
    "ReceiptTopic",
    "RefusedReading",
    "State",
    "Status",
    "StatusBody",
    "TagMeta",
    "Telemetry",
    "TelemetryBody",
    "Topic",
    "Value",
    "WriteRange",
    "agent_status_topic",
    "batch_digest",
    "check_segment",
    "cmd_result_topic",
    "cmd_topic",
    "coalesce_seqs",
    "encode_agent_status",
    "encode_command",
    "encode_command_result",
    "encode_meta",
    "encode_receipt",
    "encode_status",
    "encode_telemetry",
    "meta_topic",
    "parse_agent_status",
    "parse_command",
    "parse_command_result",
    "parse_meta",
    "parse_receipt",
    "parse_status",
    "parse_telemetry",
    "parse_telemetry_partial",
    "parse_topic",
    "quiet_ms",
    "receipt_topic",
    "scheduled_per_minute",
    "status_topic",
    "telemetry_topic",
    "validate_reading",
]
