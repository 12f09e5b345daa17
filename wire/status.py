"""Retained status messages of machines and agents: bytes ⇄ models (pure).

A status `ts` is not held to the telemetry window: a last will is written when the client
connects and published, unchanged, whenever the connection dies — possibly months later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pydantic import ValidationError

from wire.errors import PayloadError, shorten
from wire.limits import VERSION
from wire.models import AgentStatus, AgentStatusBody, DeviceStatus, State, Status, StatusBody
from wire.topics import AgentTopic, MachineTopic, parse_topic
from wire.validation import payload_error, validate_payload

__all__ = ["encode_agent_status", "encode_status", "parse_agent_status", "parse_status"]


def encode_status(state: State, ts: int, detail: str | None = None) -> bytes:
    """Serialise a machine status (use state='offline' for the last will)."""
    try:
        body = StatusBody(v=VERSION, state=state, ts=ts, detail=detail)
    except ValidationError as exc:
        raise payload_error(exc) from None
    return _dump(body)


def parse_status(topic: str, payload: bytes) -> Status:
    """Validate a machine status message; raise PayloadError, never anything else."""
    where = parse_topic(topic)
    if not isinstance(where, MachineTopic) or where.kind != "status":
        raise PayloadError("bad_topic", f"topic: {shorten(topic)} is not a status topic", "topic")
    body = validate_payload(StatusBody, payload)
    return Status.model_construct(
        site=where.site,
        line=where.line,
        machine=where.machine,
        state=body.state,
        ts=body.ts,
        detail=body.detail,
    )


def encode_agent_status(
    state: State,
    ts: int,
    *,
    version: str | None = None,
    site: str | None = None,
    line: str | None = None,
    buffer_depth: int | None = None,
    buffer_age_ms: int | None = None,
    dropped: int | None = None,
    poll_errors: Mapping[str, int] | None = None,
    publish_rate: float | None = None,
    buffer_bytes: int | None = None,
    backlog: int | None = None,
    backlog_age_ms: int | None = None,
    drain_rate: float | None = None,
    eta_s: float | None = None,
    devices: Mapping[str, DeviceStatus] | None = None,
) -> bytes:
    """Serialise an agent's health (state='offline' with only `ts` for the last will)."""
    try:
        body = AgentStatusBody(
            v=VERSION,
            state=state,
            ts=ts,
            version=version,
            site=site,
            line=line,
            buffer_depth=buffer_depth,
            buffer_age_ms=buffer_age_ms,
            dropped=dropped,
            poll_errors=poll_errors or {},
            publish_rate=publish_rate,
            buffer_bytes=buffer_bytes,
            backlog=backlog,
            backlog_age_ms=backlog_age_ms,
            drain_rate=drain_rate,
            eta_s=eta_s,
            devices=devices or {},
        )
    except ValidationError as exc:
        raise payload_error(exc) from None
    return _dump(body)


def parse_agent_status(topic: str, payload: bytes) -> AgentStatus:
    """Validate an agent status message; raise PayloadError, never anything else."""
    where = parse_topic(topic)
    if not isinstance(where, AgentTopic) or where.kind != "status":
        raise PayloadError(
            "bad_topic", f"topic: {shorten(topic)} is not an agent status topic", "topic"
        )
    body = validate_payload(AgentStatusBody, payload)
    # Attributes, not model_dump(): nested DeviceStatus models must stay models.
    fields = {name: getattr(body, name) for name in type(body).model_fields if name != "v"}
    return AgentStatus.model_construct(agent_id=where.agent_id, **fields)


def _dump(body: StatusBody | AgentStatusBody) -> bytes:
    # "v" first, as every wire example shows it; absent optional fields are left out.
    fields = body.model_dump(mode="json", exclude_defaults=True, exclude={"v"})
    return json.dumps({"v": body.v, **fields}, separators=(",", ":"), ensure_ascii=False).encode()
