"""`millstream-hub kafka init` (create the topics), `kafka shards` (the outbox's shard count) and
`millstream-hub kafka-relay`."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer

from hub.cli.migrate import ConfigOption
from hub.config import HubConfig, KafkaConfig, load_config
from hub.errors import ConfigError, MillstreamHubError
from millstream_common.tracing import open_tracer

__all__ = ["register"]

log = logging.getLogger("hub")

kafka_app = typer.Typer(help="Kafka bridge administration.", no_args_is_help=True)


def _kafka_config(config: ConfigOption) -> tuple[HubConfig, KafkaConfig]:
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    if cfg.kafka is None:
        typer.echo(
            "no `kafka:` section in the config (e.g. kafka: {bootstrap: host:9092})", err=True
        )
        raise typer.Exit(1)
    return cfg, cfg.kafka


@kafka_app.command("init")
def init(config: ConfigOption = None) -> None:
    """Create the bridge's topics (telemetry, compacted relay-state, dead letters) if missing."""
    from hub.bridge.kafka import create_topics  # noqa: PLC0415 -- keep CLI start-up light

    _, kcfg = _kafka_config(config)
    try:
        outcome = create_topics(kcfg)
    except MillstreamHubError as exc:
        typer.echo(f"kafka init failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    for name, what in outcome.items():
        typer.echo(f"{name}: {what}")


async def _relay(cfg: HubConfig, kcfg: KafkaConfig) -> None:
    from hub.bridge.kafka import KafkaRelay  # noqa: PLC0415

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tracer = open_tracer("millstream-relay", cfg.tracing)
    relay = KafkaRelay(kcfg, cfg.storage, topics_fatal=True, tracer=tracer)
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(relay.run(stop), name="kafka-relay")
            tg.create_task(relay.watch_lag(stop), name="outbox-lag")
    finally:
        if tracer is not None:
            await asyncio.to_thread(tracer.close)


def relay(config: ConfigOption = None) -> None:
    """Drain the PostgreSQL outbox into Kafka (exactly once) until SIGTERM/SIGINT."""
    from millstream_common.logjson import setup_logging  # noqa: PLC0415

    setup_logging()
    cfg, kcfg = _kafka_config(config)
    try:
        asyncio.run(_relay(cfg, kcfg))
    except* MillstreamHubError as group:
        for err in group.exceptions:
            log.critical("fatal: %s", err)
        raise typer.Exit(1) from None
    log.info("relay stopped")


async def _shards(dsn: str, count: int | None) -> tuple[int, bool]:
    import asyncpg  # noqa: PLC0415 -- keep CLI start-up light

    from hub.bridge.kafka.outbox import set_shard_count, shard_count  # noqa: PLC0415

    conn = await asyncpg.connect(dsn)
    try:
        changed = count is not None and await set_shard_count(conn, count)
        return await shard_count(conn), changed
    finally:
        await conn.close()


@kafka_app.command("shards")
def shards(
    count: Annotated[
        int | None, typer.Argument(min=1, max=256, help="the new shard count; omit to show it")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Show or change how many shards the Kafka outbox has (how many relays can work at once).

    Changing it needs an empty outbox and no relay running, so that no machine's rows are ever
    in two shards: stop the hub instances and relays, start one relay alone until
    millstream_kafka_outbox_rows is 0, stop it, run this, start everything (docs/kafka.md).
    """
    cfg, _ = _kafka_config(config)
    if not cfg.storage.startswith("postgresql://"):
        typer.echo("the Kafka outbox lives in PostgreSQL: set storage: postgresql://…", err=True)
        raise typer.Exit(1)
    try:
        now, changed = asyncio.run(_shards(cfg.storage, count))
    except (OSError, ConnectionError) as exc:
        typer.echo(f"cannot reach PostgreSQL: {exc}; check storage: in the config", err=True)
        raise typer.Exit(1) from exc
    if count is not None and not changed and now != count:
        typer.echo(
            f"the outbox has {now} shards and was not changed: it still holds rows or a relay "
            "is running. Stop the hub instances and relays, let one relay empty the outbox "
            "(millstream_kafka_outbox_rows = 0), stop it, then run this again (docs/kafka.md)",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"kafka outbox shards: {now}")


def register(app: typer.Typer) -> None:
    """Add `kafka init` and `kafka-relay`."""
    app.add_typer(kafka_app, name="kafka")
    app.command("kafka-relay")(relay)
