"""`edge-agent init [FILE]`: write a commented agent config to start from; with an enrolment
token from the hub, with the agent's own broker credentials and site settings in it."""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register", "render_config"]

_HELP = """Write a commented agent config (default agent.yaml). Values not given as options are
asked for. Then: edit the devices, `edge-agent validate FILE`, `edge-agent probe`, `edge-agent run`.

With --hub and --token (from `millstream-hub agents add --enrol` or `agents enrol`), the hub
delivers the agent id, site, line, broker URL and the agent's own broker password: nobody types
or copies a password. The password goes to mqtt.pass next to the config (readable by its owner
only); the token works once.

Examples:

\b
    $ edge-agent init
    $ edge-agent init /etc/millstream/agent.yaml --hub http://hub.plant-a.local:8080 \\
        --token mse_3q2…
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
{login}  # ca_file: /etc/millstream/ca.pem          # TLS: the broker's CA
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
    password_file: str | None = None,
) -> str:
    """The commented config text (with `password_file`, logged in as `agent_id`)."""
    login = (
        f"  username: {agent_id}\n  password_file: {password_file}   # from the hub's enrolment\n"
        if password_file
        else f"  # username: {agent_id}\n  # password_env: MILLSTREAM_MQTT_PASSWORD"
        "   # or password_file: /etc/millstream/mqtt.pass\n"
    )
    return _TEMPLATE.format(
        path=path,
        login=login,
        agent_id=agent_id,
        site=site,
        line=line,
        broker=broker,
        machine=machine,
        profile=profile,
        host=host,
    )


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What the hub delivers for a token."""

    agent_id: str
    site: str
    line: str
    broker: str
    password: str


def redeem(hub: str, token: str, ca_file: Path | None = None, timeout_s: float = 30.0) -> Enrolment:
    """Redeem `token` at the hub's API; raises `typer.Exit` with the next step on failure."""
    url = hub.rstrip("/") + "/api/v1/enrol"
    if not url.startswith(("http://", "https://")):
        _fail(f"--hub {hub} is not an http:// or https:// URL", "e.g. --hub http://hub:8080")
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    request = urllib.request.Request(  # noqa: S310 -- the scheme is checked above
        url,
        data=json.dumps({"token": token}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as answer:  # noqa: S310
            doc: dict[str, Any] = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        detail = _detail(exc)
        if exc.code == 403:
            _fail(f"the hub refused the token: {detail}", "ask the hub's admin for a new token")
        _fail(f"the hub answered {exc.code}: {detail}", "try again in a minute")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        _fail(
            f"cannot reach the hub at {url}: {reason}",
            "check --hub (the address this PC reaches the hub's API at) and the network"
            + ("; for a private CA pass --hub-ca" if url.startswith("https") else ""),
        )
    mqtt = doc["mqtt"]
    return Enrolment(doc["agent_id"], doc["site"], doc["line"], mqtt["url"], mqtt["password"])


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["detail"])
    except (ValueError, KeyError, TypeError, OSError):
        return str(exc.reason)


def _fail(message: str, hint: str) -> None:
    typer.echo(f"error: {message}\n    hint: {hint}", err=True)
    raise typer.Exit(1)


def _write_secret(path: Path, secret: str) -> None:
    """Write `secret` readable by its owner only, from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    path.chmod(0o600)  # an existing file keeps its mode through O_CREAT


def init(  # noqa: PLR0917 -- typer maps parameters to CLI options
    file: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("agent.yaml"),
    hub: Annotated[
        str | None, typer.Option(help="The hub's API URL, to redeem --token at.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="A one-time enrolment token from `millstream-hub agents add --enrol`."),
    ] = None,
    hub_ca: Annotated[
        Path | None, typer.Option(help="CA file for an https:// hub with a private CA.")
    ] = None,
    agent_id: Annotated[str | None, typer.Option(help="Agent id (e.g. line3-pc).")] = None,
    site: Annotated[str | None, typer.Option(help="Site (e.g. plant-a).")] = None,
    line: Annotated[str | None, typer.Option(help="Line (e.g. line-3).")] = None,
    broker: Annotated[str | None, typer.Option(help="Broker URL.")] = None,
    machine: Annotated[str, typer.Option(help="First machine's name.")] = "machine-1",
    profile: Annotated[str, typer.Option(help="First machine's profile.")] = "eastron-sdm630",
    host: Annotated[str, typer.Option(help="First machine's Modbus TCP address.")] = "192.0.2.10",
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented agent config."""
    if file.exists() and not force:
        typer.echo(f"error: {file} exists; pass --force to overwrite it", err=True)
        raise typer.Exit(1)
    if (hub is None) != (token is None):
        _fail("--hub and --token go together", "pass both, or neither")
    password_file: Path | None = None
    if hub is not None and token is not None:
        got = redeem(hub, token, hub_ca)
        agent_id, site, line, broker = got.agent_id, got.site, got.line, got.broker
        file.parent.mkdir(parents=True, exist_ok=True)
        # Absolute: the agent reads it from wherever its service starts.
        password_file = (file.parent / "mqtt.pass").resolve()
        _write_secret(password_file, got.password)
    agent_id = agent_id or typer.prompt("Agent id (e.g. line3-pc)")
    site = site or typer.prompt("Site (e.g. plant-a)")
    line = line or typer.prompt("Line (e.g. line-3)")
    broker = broker or typer.prompt("Broker URL", default="mqtt://127.0.0.1:1883")
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
            password_file=None if password_file is None else str(password_file),
        )
    )
    if password_file is not None:
        typer.echo(
            f"enrolled as {agent_id} ({site}/{line}); broker {broker}; its password is in "
            f"{password_file} (owner-only)"
        )
    typer.echo(f"wrote {file}; next: edit devices, then edge-agent validate {file}")


def register(app: typer.Typer) -> None:
    """Add `init` to the CLI."""
    app.command("init", help=_HELP)(init)
