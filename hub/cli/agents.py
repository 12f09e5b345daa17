"""`millstream-hub agents config get|push|history|rollback AGENT`: each agent's configuration in
versions, pushed over MQTT as a `config` command (docs/commands.md "Remote configuration")."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

import wire
from hub.cli.migrate import ConfigOption
from hub.commands.configs import (
    ConfigError,
    config_history,
    current_version,
    get_version,
    push_config,
    rollback_target,
)
from hub.commands.store import wait_answer
from hub.config import HubConfig, load_config
from hub.errors import ConfigError as HubConfigError
from hub.errors import MillstreamHubError
from hub.ingest.mqtt import MqttSession
from hub.sql import Database, open_database
from millstream_common.configbundle import BundleError, gather_config_files

__all__ = ["agents_app", "register", "who_runs_this"]

_T = TypeVar("_T")


def who_runs_this() -> str:
    """The audit log's `issued_by` for a push from this command line: the OS account."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = str(os.getuid())
    return f"cli:{user}"[:128]


CONNECT_S = 15.0

agents_app = typer.Typer(name="agents", help="Agents reporting to this hub.", no_args_is_help=True)
config_app = typer.Typer(
    name="config",
    no_args_is_help=True,
    help="""Each agent's configuration, in versions, pushed from the hub.

The agent checks a pushed version as `edge-agent validate` would, switches to it without losing
a buffered reading, and keeps it only if every device that was online comes back and the broker
is reached within --rollback-after seconds; otherwise it goes back to its previous configuration
by itself. Broker passwords never travel: the agent keeps its own password_file.

\b
    $ millstream-hub agents config push line3-pc agent.yaml --comment "add oven-02"
    $ millstream-hub agents config history line3-pc
    $ millstream-hub agents config get line3-pc --out ./line3-pc
    $ millstream-hub agents config rollback line3-pc
""",
)
agents_app.add_typer(config_app)

AgentArg = Annotated[str, typer.Argument(help="The agent id (agent.id in its agent.yaml).")]
RollbackAfter = Annotated[
    float,
    typer.Option(
        min=5,
        max=3600,
        help="Seconds the agent gives the new version to bring back every device that was "
        "online, and the broker, before it goes back to the previous one.",
    ),
]
Wait = Annotated[
    float | None,
    typer.Option(
        help="Seconds to wait for the agent's answer (default: --rollback-after + 30; 0: "
        "do not wait).",
    ),
]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _run(config: Path | None, op: Callable[[HubConfig, Database], Awaitable[_T]]) -> _T:
    async def go(cfg: HubConfig) -> _T:
        async with open_database(cfg.storage, max_connections=1) as db:
            return await op(cfg, db)

    try:
        cfg = load_config(config)
        return asyncio.run(go(cfg))
    except HubConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    except MillstreamHubError as exc:
        typer.echo(f"failed: {exc} (has `millstream-hub migrate` been run?)", err=True)
        raise typer.Exit(1) from exc


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


async def _send(
    cfg: HubConfig,
    db: Database,
    *,
    agent: str,
    files: dict[str, str],
    rollback_after: float,
    comment: str,
    wait: float,
) -> int:
    """Push, report progress, and return the exit code the answer deserves."""
    async with MqttSession(
        cfg.mqtt,
        f"millstream-hub-cli-{uuid.uuid4().hex[:12]}",
        lambda _message: None,
        subscribe=False,
        persistent=False,
    ) as session:
        try:
            await session.wait_connected(CONNECT_S)
        except TimeoutError:
            typer.echo(
                f"cannot reach the broker at {cfg.mqtt.url} in {CONNECT_S:g} s: check "
                "mqtt.url and the credentials in the hub config; nothing was pushed",
                err=True,
            )
            return 1
        sent: list[Any] = []
        row = await push_config(
            db,
            lambda topic, payload: sent.append(session.publish(topic, payload)),
            agent_id=agent,
            files=files,
            who=who_runs_this(),
            now_ms=_now_ms(),
            rollback_after=rollback_after,
            comment=comment,
        )
        deadline = time.monotonic() + CONNECT_S
        while not all(info.is_published() for info in sent):
            if time.monotonic() > deadline:
                typer.echo(
                    f"version {row['version']} recorded, but the broker did not confirm it in "
                    f"{CONNECT_S:g} s: push again",
                    err=True,
                )
                return 1
            await asyncio.sleep(0.05)
    version = row["version"]
    typer.echo(
        f"sent config version {version} to {agent} (command {row['command_id']}): "
        f"{', '.join(files)}"
    )
    if wait <= 0:
        return 0
    typer.echo(
        f"waiting for {agent} to check it, switch, and prove it (devices back and broker "
        f"reached within {rollback_after:g} s)…",
        err=True,
    )
    answer = await _wait_with_progress(db, row["command_id"], wait)
    status, detail = answer["status"], answer["detail"] or ""
    if status == "done":
        typer.echo(f"kept: {detail}")
        return 0
    if status == "pending":
        typer.echo(
            f"no answer yet after {wait:g} s (is {agent} online?): see "
            f"`millstream-hub agents config history {agent}`"
        )
        return 3
    word = {"failed": "rolled back", "refused": "refused", "expired": "expired"}[status]
    typer.echo(f"{word}: {detail}", err=True)
    return 1


async def _wait_with_progress(db: Database, command_id: str, wait: float) -> dict[str, Any]:
    started = time.monotonic()
    while True:
        left = wait - (time.monotonic() - started)
        row = await wait_answer(db, command_id, min(10.0, max(0.0, left)))
        if row["status"] != "pending" or left <= 10.0:  # the step above
            return row
        typer.echo(f"  still waiting ({time.monotonic() - started:.0f} s)…", err=True)


@config_app.command("push")
def push(  # noqa: PLR0917 -- typer maps parameters to CLI options
    agent: AgentArg,
    file: Annotated[
        Path,
        typer.Argument(
            help="The agent.yaml to send; profiles it names that sit beside it (or in its "
            "device_profiles/ folder) are sent with it."
        ),
    ],
    comment: Annotated[str, typer.Option(help="Why, for the history.")] = "",
    rollback_after: RollbackAfter = 60.0,
    wait: Wait = None,
    config: ConfigOption = None,
) -> None:
    """Send a new configuration version to an agent and wait for its answer.

    Exit 0 when the agent kept it, 1 when it refused it or rolled it back (the reason is
    printed), 3 when it has not answered within --wait (it answers when it is back).
    """
    try:
        gathered = gather_config_files(file)
    except BundleError as exc:
        typer.echo(f"{exc}; nothing was pushed", err=True)
        raise typer.Exit(1) from exc
    if gathered.not_sent:
        typer.echo(
            "profiles the agent must find itself (shipped, or in its MILLSTREAM_PROFILE_PATH): "
            + ", ".join(gathered.not_sent),
            err=True,
        )
    waited = rollback_after + 30 if wait is None else wait

    async def op(cfg: HubConfig, db: Database) -> int:
        return await _send(cfg, db, agent=agent, files=gathered.files,
                           rollback_after=rollback_after, comment=comment, wait=waited)  # fmt: skip

    try:
        code = _run(config, op)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"])
        typer.echo(f"cannot send this config: {where}: {error['msg']}", err=True)
        raise typer.Exit(1) from exc
    raise typer.Exit(code)


@config_app.command("rollback")
def rollback(
    agent: AgentArg,
    to: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=2**31 - 1,
            help="The version to return to (default: the one kept before the current).",
        ),
    ] = None,
    rollback_after: RollbackAfter = 60.0,
    wait: Wait = None,
    config: ConfigOption = None,
) -> None:
    """Push an earlier version's files again, as a new version, and wait for the answer."""
    waited = rollback_after + 30 if wait is None else wait

    async def op(cfg: HubConfig, db: Database) -> int:
        target = await rollback_target(db, agent, to)
        typer.echo(f"returning {agent} to config version {target['version']}", err=True)
        return await _send(cfg, db, agent=agent, files=target["files"],
                           rollback_after=rollback_after,
                           comment=f"rollback to version {target['version']}",
                           wait=waited)  # fmt: skip

    raise typer.Exit(_run(config, op))


@config_app.command("history")
def history(
    agent: AgentArg,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
    config: ConfigOption = None,
) -> None:
    """Every version pushed to an agent, newest first, and what became of it."""

    async def op(_cfg: HubConfig, db: Database) -> list[dict[str, Any]]:
        return await config_history(db, agent, 1000)

    rows = _run(config, op)
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        typer.echo(
            f"no config was pushed to {agent}: it runs its own file "
            f"(push one with `millstream-hub agents config push {agent} agent.yaml`)"
        )
        return
    word = {"done": "kept", "failed": "rolled back", "refused": "refused",
            "expired": "expired", "pending": "pending"}  # fmt: skip
    typer.echo(
        f"{'VERSION':>7}  {'STATUS':<11}  {'PUSHED (UTC)':<20}  {'BY':<16}  COMMENT / ANSWER"
    )
    for r in rows:
        note = " — ".join(x for x in (r["comment"], r["detail"] or "") if x)
        typer.echo(
            f"{r['version']:>7}  {word[r['status']]:<11}  {_when(r['pushed_at']):<20}  "
            f"{r['pushed_by'][:16]:<16}  {note}"
        )


@config_app.command("get")
def get(
    agent: AgentArg,
    version: Annotated[
        int | None,
        typer.Option(min=1, max=2**31 - 1, help="A version (default: the one the agent runs)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write every file of the version into this folder (to edit and push)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print the agent.yaml of the version an agent runs (or --version N); --out DIR writes
    all its files."""

    async def op(_cfg: HubConfig, db: Database) -> tuple[int | None, dict[str, Any] | None]:
        return await current_version(db, agent), await get_version(db, agent, version)

    running, row = _run(config, op)
    if row is None:
        if version is not None:
            typer.echo(f"{agent} has no config version {version}", err=True)
        else:
            typer.echo(
                f"{agent} runs its own file: no pushed version was kept "
                f"(see `millstream-hub agents config history {agent}`)",
                err=True,
            )
        raise typer.Exit(1)
    files: dict[str, str] = row["files"]
    state = "running" if row["version"] == running else row["status"]
    typer.echo(f"# {agent} config version {row['version']} ({state})", err=True)
    if out is None:
        sys.stdout.write(files[wire.CONFIG_MAIN_FILE])
        others = [name for name in files if name != wire.CONFIG_MAIN_FILE]
        if others:
            typer.echo(f"# also: {', '.join(others)} (--out DIR writes them)", err=True)
        return
    for name, text in files.items():
        target = out / name  # relative plain names: the wire contract checked them on push
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {len(files)} file{'s' if len(files) != 1 else ''} to {out}")


def register(app: typer.Typer) -> None:
    """Add `agents` to the CLI."""
    app.add_typer(agents_app)
