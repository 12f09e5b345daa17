"""`edge-agent init [FILE]`: write a commented agent config to start from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register", "render_config"]

_HELP = """Write a commented agent config (default agent.yaml). Values not given as options are
asked for. Then: edit the devices, `edge-agent validate FILE`, `edge-agent probe`, `edge-agent run`.

Examples:

\b
    $ edge-agent init
    $ edge-agent init /etc/millstream/agent.yaml --agent-id line3-pc --site plant-a \\
        --line line-3 --broker mqtts://hub.plant-a.local:8883
"""

_TEMPLATE = """\
# Millstream edge agent config. Check it with: edge-agent validate {path}
# Sizes: 500MB, 1GiB. Durations: 100ms, 3s, 7d. Every key can be overridden by a
# MILLSTREAM_… environment variable (see docs/configuration.md).

agent:
  id: {agent_id}        # this PC's publisher id (MQTT client id, `src` of every batch)
  site: {site}
  line: {line}

mqtt:
  url: {broker}   # mqtt://HOST:1883, or mqtts://HOST:8883 for TLS
  # username: {agent_id}
  # password_env: MILLSTREAM_MQTT_PASSWORD   # or password_file: /etc/millstream/mqtt.pass
  # ca_file: /etc/millstream/ca.pem          # TLS: the broker's CA
  # cert_file: /etc/millstream/agent.pem     # TLS client certificate and key, if required
  # key_file: /etc/millstream/agent.key
  receipts: true          # delete buffered readings only when the hub confirms them
  receipt_timeout: 30s    # no receipt by then: publish the same batch again
  inflight: 100           # QoS 1 messages awaiting PUBACK at once
  max_batch: 1000         # readings per batch (at most 10000)
  max_delay_ms: 100       # a batch waits at most this long for more readings
  backlog_rate: 200000    # readings/s the backlog may use after an outage; live data goes first

buffer:
  path: buffer.db         # relative to this file
  max_bytes: 1GiB
  max_age: 7d
  on_full: drop_oldest    # or downsample_oldest (per-minute min/max/avg/last); drops are counted

devices:
  # One entry per machine; profiles describe the machine type (edge-agent validate lists them).
  - machine: {machine}
    profile: {profile}
    modbus:
      host: {host}
      port: 502
      unit: 1
  # Other protocols take one of these instead of modbus: (docs/configuration.md):
  #   opcua: {{url: "opc.tcp://192.0.2.20:4840"}}
  #   s7: {{host: 192.0.2.30, rack: 0, slot: 1}}      # Siemens S7-300/400/1200/1500
  #   enip: {{host: 192.0.2.40, slot: 0}}             # Allen-Bradley ControlLogix/CompactLogix
"""


def render_config(
    *,
    path: str,
    agent_id: str,
    site: str,
    line: str,
    broker: str,
    machine: str,
    profile: str,
    host: str,
) -> str:
    """The commented config text."""
    return _TEMPLATE.format(
        path=path,
        agent_id=agent_id,
        site=site,
        line=line,
        broker=broker,
        machine=machine,
        profile=profile,
        host=host,
    )


def init(  # noqa: PLR0917 -- typer maps parameters to CLI options
    file: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("agent.yaml"),
    agent_id: Annotated[str, typer.Option(prompt="Agent id (e.g. line3-pc)")] = ...,  # type: ignore[assignment]
    site: Annotated[str, typer.Option(prompt="Site (e.g. plant-a)")] = ...,  # type: ignore[assignment]
    line: Annotated[str, typer.Option(prompt="Line (e.g. line-3)")] = ...,  # type: ignore[assignment]
    broker: Annotated[str, typer.Option(prompt="Broker URL")] = "mqtt://127.0.0.1:1883",
    machine: Annotated[str, typer.Option(help="First machine's name.")] = "machine-1",
    profile: Annotated[str, typer.Option(help="First machine's profile.")] = "eastron-sdm630",
    host: Annotated[str, typer.Option(help="First machine's Modbus TCP address.")] = "192.0.2.10",
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented agent config."""
    if file.exists() and not force:
        typer.echo(f"error: {file} exists; pass --force to overwrite it", err=True)
        raise typer.Exit(1)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(
        render_config(
            path=str(file),
            agent_id=agent_id,
            site=site,
            line=line,
            broker=broker,
            machine=machine,
            profile=profile,
            host=host,
        )
    )
    typer.echo(f"wrote {file}; next: edit devices, then edge-agent validate {file}")


def register(app: typer.Typer) -> None:
    """Add `init` to the CLI."""
    app.command("init", help=_HELP)(init)
