"""Commands to agents and their results: `ms/v1/agents/{id}/cmd` and `…/cmd/res` (pure).

The hub publishes a command (QoS 1) to the agent that serves the machine; the agent answers once
on `cmd/res` with the command's `id`. An agent executes an id **at most once** — a command
delivered twice, or again after a restart, is answered with the result it already has — and never
after `expires_at`: a write queued in the broker while the agent was away must not fire an hour
late. Kinds:

- `write`: set `tag` of `machine` to `value` (engineering units); the agent refuses tags its
  profile does not mark `writable` and values outside the tag's `min`/`max`, writes, reads the
  value back and reports it in `read_back` (and the value before in `previous`);
- `call`: call `method` of `machine` (an OPC-UA method its profile declares) with `args`; the
  result carries the method's `outputs`;
- `acknowledge`: acknowledge the alarm `event` (a machine event's id: the occurrence of an OPC-UA
  condition the agent published) of `machine`, with the operator's `comment`; the agent refuses
  an event it knows no acknowledgeable condition for;
- `config`: a new agent configuration (`config`: its version, its files — the agent config file
  `agent.yaml` and the device profiles it names — and `rollback_after`); the agent validates it,
  switches to it and keeps it only if every device online before comes back and the broker is
  reached within `rollback_after` seconds, else it goes back to its previous configuration by
  itself. The result says which. No secret travels: the agent keeps its local broker password.

docs/wire.md ("Commands") is the reference for device makers.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from wire.errors import PayloadError, shorten
from wire.limits import EVENT_ID_PATTERN, UUID_PATTERN, VERSION
from wire.models import Segment, Tag, Text, Ts, Value, Version, _no_nul, _utf8_at_most
from wire.topics import AgentTopic, parse_topic
from wire.validation import validate_payload

__all__ = [
    "COMMAND_STATUSES",
    "CONFIG_MAIN_FILE",
    "MAX_ACK_COMMENT_CHARS",
    "Command",
    "CommandKind",
    "CommandResult",
    "CommandStatus",
    "ConfigBundle",
    "encode_command",
    "encode_command_result",
    "parse_command",
    "parse_command_result",
]

CommandKind = Literal["write", "call", "config", "acknowledge"]
MAX_ARGS = 32
# OPC-UA carries an acknowledgement's comment as a LocalizedText of any length; an operator's
# note of a line or two is what a server's alarm list and the hub's audit log show.
MAX_ACK_COMMENT_CHARS = 512
CommandStatus = Literal["done", "refused", "failed", "expired"]
COMMAND_STATUSES: tuple[CommandStatus, ...] = ("done", "refused", "failed", "expired")
CommandId = Annotated[str, Field(strict=True, pattern=f"^{UUID_PATTERN}$")]
Who = Annotated[Text, Field(min_length=1, max_length=128)]
Detail = Annotated[Text, Field(max_length=1000)]
# A file of a config bundle: a relative path of plain names ("agent.yaml", "profiles/x.yaml").
ConfigFileName = Annotated[
    str,
    Field(
        strict=True,
        max_length=200,
        pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$",
    ),
]
# Text (UTF-8 bytes, no NUL) with a limit in characters, which is what an operator counts.
AckComment = Annotated[
    str,
    Field(strict=True, max_length=MAX_ACK_COMMENT_CHARS),
    AfterValidator(_utf8_at_most),
    AfterValidator(_no_nul),
]
MAX_CONFIG_FILES = 64
CONFIG_MAIN_FILE = "agent.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _text_file(text: str) -> str:
    if "\x00" in text:
        raise PydanticCustomError("nul_in_string", "a config file holds U+0000 (NUL)")
    return text


class ConfigBundle(_Model):
    """An agent configuration as it travels: the config file and the profiles it names."""

    version: Annotated[int, Field(strict=True, ge=1, le=2**31 - 1)]
    # Relative paths (no `..`: the pattern allows no segment starting with a dot) to contents.
    files: Annotated[
        dict[ConfigFileName, Annotated[str, AfterValidator(_text_file)]],
        Field(min_length=1, max_length=MAX_CONFIG_FILES),
    ]
    # Seconds the agent gives the new configuration to bring back every device and the broker.
    rollback_after: Annotated[float, Field(ge=5, le=3600)] = 60.0

    @model_validator(mode="after")
    def _has_main_file(self) -> ConfigBundle:
        if CONFIG_MAIN_FILE not in self.files:
            raise PydanticCustomError(
                "incomplete_command", "a config bundle carries agent.yaml among its files"
            )
        return self


class Command(_Model):
    """A command as it travels to the agent."""

    v: Version = VERSION
    id: CommandId
    kind: CommandKind
    issued_by: Who
    issued_at: Ts
    expires_at: Ts
    # write (machine, tag, value) and call (machine, method, args)
    machine: Segment | None = None
    tag: Tag | None = None
    value: Value | None = None
    method: Tag | None = None
    args: Annotated[tuple[Value, ...], Field(max_length=MAX_ARGS)] = ()
    # config: the agent configuration, whole
    config: ConfigBundle | None = None
    # acknowledge (machine, event, comment)
    event: Annotated[str, Field(strict=True, pattern=f"^{EVENT_ID_PATTERN}$")] | None = None
    comment: AckComment = ""

    @model_validator(mode="after")
    def _complete(self) -> Command:
        if self.expires_at < self.issued_at:
            raise PydanticCustomError("incomplete_command", "expires_at is before issued_at")
        if self.kind == "write" and (
            self.machine is None or self.tag is None or self.value is None
        ):
            raise PydanticCustomError("incomplete_command", "a write names machine, tag and value")
        if self.kind == "call" and (self.machine is None or self.method is None):
            raise PydanticCustomError("incomplete_command", "a call names machine and method")
        if self.kind == "config" and self.config is None:
            raise PydanticCustomError("incomplete_command", "a config command carries config")
        if self.kind == "acknowledge" and (self.machine is None or self.event is None):
            raise PydanticCustomError(
                "incomplete_command", "an acknowledge names machine and event"
            )
        return self


class CommandResult(_Model):
    """What the agent answers, once per command id."""

    v: Version = VERSION
    id: CommandId
    status: CommandStatus
    detail: Detail = ""
    ts: Ts
    read_back: Value | None = None
    previous: Value | None = None
    outputs: Annotated[tuple[Value, ...], Field(max_length=MAX_ARGS)] | None = None


def encode_command(command: Command) -> bytes:
    """Serialise a command (absent optional fields left out)."""
    return _dump(command)


def encode_command_result(result: CommandResult) -> bytes:
    """Serialise a result (absent optional fields left out)."""
    return _dump(result)


def parse_command(topic: str, payload: bytes) -> tuple[str, Command]:
    """(agent id, command) of a message on `…/cmd`; PayloadError, never anything else."""
    where = parse_topic(topic)
    if not isinstance(where, AgentTopic) or where.kind != "cmd":
        raise PayloadError("bad_topic", f"topic: {shorten(topic)} is not a command topic", "topic")
    return where.agent_id, validate_payload(Command, payload)


def parse_command_result(topic: str, payload: bytes) -> tuple[str, CommandResult]:
    """(agent id, result) of a message on `…/cmd/res`; PayloadError, never anything else."""
    where = parse_topic(topic)
    if not isinstance(where, AgentTopic) or where.kind != "cmd_res":
        raise PayloadError(
            "bad_topic", f"topic: {shorten(topic)} is not a command result topic", "topic"
        )
    return where.agent_id, validate_payload(CommandResult, payload)


def _dump(body: Command | CommandResult) -> bytes:
    fields = body.model_dump(mode="json", exclude_none=True, exclude={"v"})
    if not fields.get("args", True):
        del fields["args"]  # a write has none
    if not fields.get("comment", True):
        del fields["comment"]  # only an acknowledge may carry one
    return json.dumps({"v": body.v, **fields}, separators=(",", ":"), ensure_ascii=False).encode()
