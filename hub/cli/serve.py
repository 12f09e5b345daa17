"""`millstream-hub serve --config hub.yaml`: run the hub until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

import typer

from hub.cli.migrate import ConfigOption
from hub.config import load_config
from hub.errors import ConfigError, MillstreamHubError
from hub.log import setup_logging
from hub.runtime import Hub

__all__ = ["register"]

log = logging.getLogger("hub")


async def _serve(hub: Hub) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await hub.run(stop)


def serve(config: ConfigOption = None) -> None:
    """Ingest MQTT telemetry into storage and serve health and metrics over HTTP."""
    setup_logging()
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    try:
        asyncio.run(_serve(Hub(cfg)))
    except* MillstreamHubError as group:
        for err in group.exceptions:
            log.critical("fatal: %s", err)
        raise typer.Exit(1) from None
    log.info("stopped")


def register(app: typer.Typer) -> None:
    """Add the `serve` command."""
    app.command("serve")(serve)
