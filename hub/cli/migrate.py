"""`millstream-hub migrate --config hub.yaml`: bring the database schema up to date."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from hub.config import load_config
from hub.errors import ConfigError, MillstreamHubError
from hub.storage import open_storage

__all__ = ["register"]

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Hub config file (YAML).", envvar="MILLSTREAM_CONFIG"),
]


async def _migrate(url: str) -> list[str]:
    async with open_storage(url) as storage:
        applied = await storage.migrate()
        await storage.check_schema()
        return applied


def migrate(config: ConfigOption = None) -> None:
    """Apply pending schema migrations to the configured storage (safe to run again)."""
    try:
        cfg = load_config(config)
        applied = asyncio.run(_migrate(cfg.storage))
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    except MillstreamHubError as exc:
        typer.echo(f"migrate failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    if applied:
        typer.echo("applied: " + ", ".join(applied))
    else:
        typer.echo("schema is up to date")


def register(app: typer.Typer) -> None:
    """Add the `migrate` command."""
    app.command("migrate")(migrate)
