"""`millstream-hub serve --config hub.yaml`: run the hub until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import signal
from collections.abc import Callable

import typer

from hub.cli.migrate import ConfigOption
from hub.config import HubConfig, load_config
from hub.errors import ConfigError, MillstreamHubError
from hub.runtime import Hub
from millstream_common.logjson import hide_secret, setup_logging

__all__ = ["register"]

log = logging.getLogger("hub")


async def _serve(hub: Hub) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settle = asyncio.create_task(_freeze_startup_heap(hub), name="gc-freeze")
    try:
        await hub.run(stop)
    finally:
        settle.cancel()


async def _freeze_startup_heap(hub: Hub) -> None:
    # What start-up built (modules, the app with its routes and models: most of the heap) lives
    # as long as the process. Frozen, it is left out of the cyclic collector's full passes,
    # which otherwise walk it all and stalled every live client for 150-300 ms at 1,000
    # WebSocket clients (bench/ws_fanout.py). Fewer, larger young collections (threshold 10,000
    # allocations instead of 700) cut the count of smaller pauses at 10,000 messages/s.
    with contextlib.suppress(MillstreamHubError, TimeoutError):
        await hub.wait_ready(timeout_s=3600)
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 10, 10)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    # uvloop (installed with uvicorn[standard]) makes each WebSocket send cheaper: at 300
    # clients × 10 updates/s, p99 83-95 ms instead of 142-295 ms (bench/ws_fanout.py).
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _hide_secrets(cfg: HubConfig) -> None:
    # Whatever quotes them (a library's error, a URL in a traceback), they never reach the log.
    if cfg.jwt_secret is not None:
        hide_secret(cfg.jwt_secret.get_secret_value())
    with contextlib.suppress(OSError):  # an unreadable file is reported when the hub connects
        hide_secret(cfg.mqtt.password())


def serve(config: ConfigOption = None) -> None:
    """Ingest MQTT telemetry into storage and serve health and metrics over HTTP."""
    setup_logging()
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    _hide_secrets(cfg)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve(Hub(cfg)))
    except* MillstreamHubError as group:
        for err in group.exceptions:
            log.critical("fatal: %s", err)
        raise typer.Exit(1) from None
    log.info("stopped")


def register(app: typer.Typer) -> None:
    """Add the `serve` command."""
    app.command("serve")(serve)
