"""Topic names of wire contract v1: build them, parse them, subscribe to them (pure).

ms/v1/{site}/{line}/{machine}/telemetry     ms/v1/agents/{agent_id}/status
ms/v1/{site}/{line}/{machine}/status        ms/v1/agents/{agent_id}/cmd
ms/v1/{site}/{line}/{machine}/meta          ms/v1/agents/{agent_id}/cmd/res
ms/v1/{site}/{line}/{machine}/events        ms/v1/receipts/{src}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from wire.errors import PayloadError, shorten
from wire.limits import RESERVED_SITES, SEGMENT_PATTERN

__all__ = [
    "AGENT_STATUS_FILTER",
    "COMMAND_RESULT_FILTER",
    "EVENTS_FILTER",
    "MACHINE_META_FILTER",
    "MACHINE_STATUS_FILTER",
    "PREFIX",
    "TELEMETRY_FILTER",
    "AgentTopic",
    "MachineTopic",
    "ReceiptTopic",
    "Topic",
    "agent_status_topic",
    "check_segment",
    "cmd_result_topic",
    "cmd_topic",
    "events_topic",
    "meta_topic",
    "parse_topic",
    "receipt_topic",
    "status_topic",
    "telemetry_topic",
]

PREFIX = "ms/v1"

# Subscription filters for the hub. `+` also matches the reserved sites; parse_topic rejects those.
TELEMETRY_FILTER = f"{PREFIX}/+/+/+/telemetry"
MACHINE_STATUS_FILTER = f"{PREFIX}/+/+/+/status"
MACHINE_META_FILTER = f"{PREFIX}/+/+/+/meta"
EVENTS_FILTER = f"{PREFIX}/+/+/+/events"
AGENT_STATUS_FILTER = f"{PREFIX}/agents/+/status"
COMMAND_RESULT_FILTER = f"{PREFIX}/agents/+/cmd/res"

_SEGMENT = re.compile(SEGMENT_PATTERN)
_AGENT_KINDS: dict[str, Literal["status", "cmd", "cmd_res"]] = {
    "status": "status",
    "cmd": "cmd",
    "cmd/res": "cmd_res",
}
MachineKind = Literal["telemetry", "status", "meta", "events"]
_MACHINE_KINDS: dict[str, MachineKind] = {
    "telemetry": "telemetry",
    "status": "status",
    "meta": "meta",
    "events": "events",
}


@dataclass(frozen=True, slots=True)
class MachineTopic:
    """`ms/v1/{site}/{line}/{machine}/{kind}`."""

    kind: MachineKind
    site: str
    line: str
    machine: str

    def __str__(self) -> str:
        return f"{PREFIX}/{self.site}/{self.line}/{self.machine}/{self.kind}"


@dataclass(frozen=True, slots=True)
class AgentTopic:
    """`ms/v1/agents/{agent_id}/status`, `…/cmd` or `…/cmd/res` (kind `cmd_res`)."""

    kind: Literal["status", "cmd", "cmd_res"]
    agent_id: str

    def __str__(self) -> str:
        suffix = "cmd/res" if self.kind == "cmd_res" else self.kind
        return f"{PREFIX}/agents/{self.agent_id}/{suffix}"


@dataclass(frozen=True, slots=True)
class ReceiptTopic:
    """`ms/v1/receipts/{src}`."""

    src: str

    def __str__(self) -> str:
        return f"{PREFIX}/receipts/{self.src}"


Topic = MachineTopic | AgentTopic | ReceiptTopic


def check_segment(name: str, value: object) -> str:
    """Return `value` if it is a valid topic segment, else raise PayloadError(bad_topic)."""
    if not isinstance(value, str) or _SEGMENT.fullmatch(value) is None:
        raise PayloadError(
            "bad_topic",
            f"{name}: {shorten(value)} must be 1-64 characters: letters, digits, _ or -",
            name,
        )
    return value


def _check_site(site: object) -> str:
    check_segment("site", site)
    if site in RESERVED_SITES:
        raise PayloadError(
            "bad_topic", f"site: {shorten(site)} is reserved for {PREFIX}/{site}/…", "site"
        )
    return str(site)


def telemetry_topic(site: str, line: str, machine: str) -> str:
    """Topic a machine's telemetry batches are published to."""
    return str(MachineTopic("telemetry", *_machine(site, line, machine)))


def status_topic(site: str, line: str, machine: str) -> str:
    """Topic of a machine's retained status (online/offline/faulted)."""
    return str(MachineTopic("status", *_machine(site, line, machine)))


def meta_topic(site: str, line: str, machine: str) -> str:
    """Topic of a machine's retained tag metadata (units, descriptions)."""
    return str(MachineTopic("meta", *_machine(site, line, machine)))


def events_topic(site: str, line: str, machine: str) -> str:
    """Topic a machine's event batches (alarms, conditions) are published to."""
    return str(MachineTopic("events", *_machine(site, line, machine)))


def agent_status_topic(agent_id: str) -> str:
    """Topic of an agent's retained health message."""
    return str(AgentTopic("status", check_segment("agent_id", agent_id)))


def cmd_topic(agent_id: str) -> str:
    """Topic the hub sends commands to an agent on."""
    return str(AgentTopic("cmd", check_segment("agent_id", agent_id)))


def cmd_result_topic(agent_id: str) -> str:
    """Topic an agent answers commands on."""
    return str(AgentTopic("cmd_res", check_segment("agent_id", agent_id)))


def receipt_topic(src: str) -> str:
    """Topic the hub publishes receipts for publisher `src` on."""
    return str(ReceiptTopic(check_segment("src", src)))


def _machine(site: str, line: str, machine: str) -> tuple[str, str, str]:
    return _check_site(site), check_segment("line", line), check_segment("machine", machine)


def parse_topic(topic: str) -> Topic:
    """Classify a v1 topic and validate its segments; raise PayloadError(bad_topic) otherwise."""
    if not isinstance(topic, str):
        raise PayloadError("bad_topic", f"topic: expected a string, got {type(topic).__name__}")
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != "ms" or parts[1] != "v1":
        raise PayloadError("bad_topic", f"topic: {shorten(topic)} is not under {PREFIX}/", "topic")
    rest = parts[2:]
    # Machine topics first, so `ms/v1/agents/x/y/status` is told that `agents` is reserved.
    if len(rest) == 4 and (machine_kind := _MACHINE_KINDS.get(rest[3])) is not None:
        return MachineTopic(machine_kind, *_machine(rest[0], rest[1], rest[2]))
    if rest[0] == "receipts" and len(rest) == 2:
        return ReceiptTopic(check_segment("src", rest[1]))
    if rest[0] == "agents" and (agent_kind := _AGENT_KINDS.get("/".join(rest[2:]))) is not None:
        return AgentTopic(agent_kind, check_segment("agent_id", rest[1]))
    raise PayloadError("bad_topic", f"topic: {shorten(topic)} is not a wire v1 topic", "topic")
