"""One write from the API: find the machine's agent, record the command, publish it, and wait
(a few seconds) for the agent's answer, which the ingest stores whichever hub instance
receives it — so the instance that waits reads it from storage, not from its own session."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import wire
from hub.commands.store import agent_of, get_command, record_command
from hub.sql import Database

__all__ = ["NoAgentError", "NotConnectedError", "issue_write"]

POLL_S = 0.1


class NoAgentError(LookupError):
    """No agent has reported polling this machine: nothing could carry the command."""


class NotConnectedError(RuntimeError):
    """This hub has no broker session to send the command on."""


async def issue_write(
    db: Database,
    publish: Callable[[str, bytes], object] | None,
    *,
    site: str,
    line: str,
    machine: str,
    tag: str,
    value: wire.Value,
    who: str,
    now_ms: int,
    expires_in_ms: int,
    wait_s: float,
) -> dict[str, Any]:
    """The command as stored after up to `wait_s` (status `pending` if no answer yet).

    `wire.PayloadError`-free: a value the wire contract refuses raises `ValueError` first.
    """
    agent = await agent_of(db, site, line, machine)
    if agent is None:
        raise NoAgentError(f"no agent has reported polling {site}/{line}/{machine}")
    if publish is None:
        raise NotConnectedError("this hub has no broker connection to send commands on")
    command = wire.Command(
        id=str(uuid.uuid4()),
        kind="write",
        issued_by=who,
        issued_at=now_ms,
        expires_at=now_ms + expires_in_ms,
        machine=machine,
        tag=tag,
        value=value,
    )
    await record_command(db, command, agent, site, line)
    publish(wire.cmd_topic(agent), wire.encode_command(command))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        row = await get_command(db, command.id)
        assert row is not None  # recorded above; commands are never deleted
        if row["status"] != "pending" or loop.time() >= deadline:
            return row
        await asyncio.sleep(POLL_S)
