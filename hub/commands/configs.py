"""Each agent's configuration in versions (`agent_configs`), and pushing one to its agent.

A push records the version and its `config` command (the audit log, hub/commands/store.py)
before publishing it; the agent answers once it has kept the version (`done`) or gone back to
the one before (`failed`, the detail says why) — up to `rollback_after` seconds later — or
refused it as invalid. A version's status is its command's. The agent's version is the newest
one it kept (or "its own file" when none was). A rollback pushes an earlier version's files
again, as a new version: history only grows. Plain SQL that both dialects run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import wire
from hub.commands.issue import NotConnectedError
from hub.commands.store import record_command
from hub.sql import Database

__all__ = [
    "CONFIG_EXPIRES_MS",
    "ConfigError",
    "UnknownAgentError",
    "agent_known",
    "config_history",
    "current_version",
    "fleet_versions",
    "get_version",
    "push_config",
    "rollback_target",
]

# An agent offline when the config is pushed takes it if it is back within this.
CONFIG_EXPIRES_MS = 10 * 60 * 1000
_COLUMNS = (
    "c.agent_id, c.version, c.comment, c.pushed_by, c.pushed_at, c.command_id,"
    " m.status, m.detail, m.answered_at"
)


class ConfigError(LookupError):
    """The push or rollback cannot be done as asked; the message says why and what to do."""


class UnknownAgentError(ConfigError):
    """No agent of that id has reported to this hub."""


async def agent_known(db: Database, agent_id: str) -> tuple[str, str] | None:
    """(site, line) of an agent that has reported to this hub ("" if it polls no machine
    yet), or None if it never has."""
    known = await db.fetch("SELECT agent_id FROM agents WHERE agent_id = $1", agent_id)
    if not known:
        return None
    rows = await db.fetch(
        "SELECT site, line FROM machine_agents WHERE agent_id = $1 LIMIT 1", agent_id
    )
    return (str(rows[0]["site"]), str(rows[0]["line"])) if rows else ("", "")


async def push_config(
    db: Database,
    publish: Callable[[str, bytes], object] | None,
    *,
    agent_id: str,
    files: Mapping[str, str],
    who: str,
    now_ms: int,
    rollback_after: float = 60.0,
    comment: str = "",
) -> dict[str, Any]:
    """Record the next version of an agent's config and send it; the version as stored.
    pydantic's ValidationError if the wire contract refuses the files (before anything is
    recorded); UnknownAgentError if the agent never reported to this hub; NotConnectedError
    without a broker session to send it on."""
    where = await agent_known(db, agent_id)
    if where is None:
        raise UnknownAgentError(
            f"no agent {agent_id!r} has reported to this hub: check the agent id "
            "(agent.id in its agent.yaml) and that the agent is running"
        )
    if publish is None:
        raise NotConnectedError("this hub has no broker connection to send commands on")
    rows = await db.fetch(
        "SELECT max(version) AS v FROM agent_configs WHERE agent_id = $1", agent_id
    )
    version = int(rows[0]["v"] or 0) + 1
    command = wire.Command(
        id=str(uuid.uuid4()),
        kind="config",
        issued_by=who,
        issued_at=now_ms,
        expires_at=now_ms + CONFIG_EXPIRES_MS,
        config=wire.ConfigBundle(version=version, files=dict(files), rollback_after=rollback_after),
    )
    payload = wire.encode_command(command)
    if len(payload) > wire.MAX_PAYLOAD_BYTES:
        raise ConfigError(
            f"the config and its profiles make {len(payload)} bytes; at most "
            f"{wire.MAX_PAYLOAD_BYTES} travel in one command"
        )
    await record_command(db, command, agent_id, *where)
    await db.execute(
        "INSERT INTO agent_configs (agent_id, version, files, comment, pushed_by, pushed_at,"
        " command_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        agent_id,
        version,
        json.dumps(dict(files)),
        comment,
        who,
        now_ms,
        command.id,
    )
    publish(wire.cmd_topic(agent_id), payload)
    row = await get_version(db, agent_id, version)
    assert row is not None  # inserted above
    return row


async def config_history(db: Database, agent_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """An agent's versions, newest first, each with its status (without the files)."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM agent_configs c JOIN commands m ON m.id = c.command_id"  # noqa: S608 -- constants
        " WHERE c.agent_id = $1 ORDER BY c.version DESC LIMIT $2",
        agent_id,
        limit,
    )
    return [_decoded(r) for r in rows]


async def get_version(
    db: Database, agent_id: str, version: int | None = None
) -> dict[str, Any] | None:
    """One version with its files; `version` None: the one the agent runs (the newest it
    kept), else None."""
    if version is None:
        version = await current_version(db, agent_id)
        if version is None:
            return None
    rows = await db.fetch(
        f"SELECT {_COLUMNS}, c.files FROM agent_configs c"  # noqa: S608 -- constants
        " JOIN commands m ON m.id = c.command_id WHERE c.agent_id = $1 AND c.version = $2",
        agent_id,
        version,
    )
    if not rows:
        return None
    out = _decoded(rows[0])
    out["files"] = json.loads(rows[0]["files"])
    return out


async def current_version(db: Database, agent_id: str) -> int | None:
    """The newest version the agent kept; None: it runs its own file."""
    rows = await db.fetch(
        "SELECT max(c.version) AS v FROM agent_configs c JOIN commands m ON m.id = c.command_id"
        " WHERE c.agent_id = $1 AND m.status = 'done'",
        agent_id,
    )
    value = rows[0]["v"] if rows else None
    return None if value is None else int(value)


async def fleet_versions(db: Database) -> dict[str, dict[str, Any]]:
    """Per agent: `config_version` (the newest kept, None: its own file), `config_latest` (the
    newest pushed) and `config_latest_status` — what the fleet view shows."""
    kept = await db.fetch(
        "SELECT c.agent_id, max(c.version) AS v FROM agent_configs c"
        " JOIN commands m ON m.id = c.command_id WHERE m.status = 'done' GROUP BY c.agent_id"
    )
    latest = await db.fetch(
        "SELECT c.agent_id, c.version, m.status FROM agent_configs c"
        " JOIN commands m ON m.id = c.command_id"
        " WHERE c.version = (SELECT max(x.version) FROM agent_configs x"
        " WHERE x.agent_id = c.agent_id)"
    )
    out: dict[str, dict[str, Any]] = {
        str(r["agent_id"]): {
            "config_version": None,
            "config_latest": int(r["version"]),
            "config_latest_status": r["status"] or "pending",
        }
        for r in latest
    }
    for r in kept:
        out[str(r["agent_id"])]["config_version"] = int(r["v"])
    return out


async def rollback_target(db: Database, agent_id: str, to: int | None) -> dict[str, Any]:
    """The version a rollback pushes again: `to`, or the one kept before the current one."""
    if to is None:
        kept = [r for r in await config_history(db, agent_id, 1000) if r["status"] == "done"]
        if len(kept) < 2:  # the current one and one before it
            raise ConfigError(
                f"agent {agent_id} has no earlier kept version to go back to "
                "(see `millstream-hub agents config history`); name one with --to"
            )
        to = int(kept[1]["version"])
    row = await get_version(db, agent_id, to)
    if row is None:
        raise ConfigError(f"agent {agent_id} has no config version {to}")
    return row


def _decoded(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in ("agent_id", "version", "comment", "pushed_by", "pushed_at",
                               "command_id", "detail", "answered_at")}  # fmt: skip
    out["status"] = row["status"] or "pending"
    return out
