"""One write, call or acknowledge from the API: find the machine's agent, record the command,
publish it, and wait (a few seconds) for the agent's answer, which the ingest stores whichever
hub instance receives it — so the instance that waits reads it from storage, not its session."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import wire
from hub.commands.store import agent_of, record_command, wait_answer
from hub.sql import Database

__all__ = ["NoAgentError", "NotConnectedError", "issue"]


class NoAgentError(LookupError):
    """No agent has reported polling this machine: nothing could carry the command."""


class NotConnectedError(RuntimeError):
    """This hub has no broker session to send the command on."""


async def issue(
    db: Database,
    publish: Callable[[str, bytes], object] | None,
    *,
    site: str,
    line: str,
    machine: str,
    who: str,
    now_ms: int,
    expires_in_ms: int,
    wait_s: float,
    what: dict[str, Any],
) -> dict[str, Any]:
    """Send a write (`what`: kind, tag, value), a call (kind, method, args) or an acknowledge
    (kind, event, comment) to the machine's agent; the command as stored after up to `wait_s`
    (status `pending` if no answer yet). A command the wire contract refuses raises pydantic's
    `ValidationError` before anything is recorded or sent."""
    agent = await agent_of(db, site, line, machine)
    if agent is None:
        raise NoAgentError(f"no agent has reported polling {site}/{line}/{machine}")
    if publish is None:
        raise NotConnectedError("this hub has no broker connection to send commands on")
    command = wire.Command(
        id=str(uuid.uuid4()),
        issued_by=who,
        issued_at=now_ms,
        expires_at=now_ms + expires_in_ms,
        machine=machine,
        **what,
    )
    await record_command(db, command, agent, site, line)
    publish(wire.cmd_topic(agent), wire.encode_command(command))
    return await wait_answer(db, command.id, wait_s)
