"""`millstream-hub devices …` and `millstream-hub agents add|list|…`: broker identities made
through Mosquitto's dynamic security plugin (docs/devices.md "Broker identities")."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

import typer

from hub.cli.agents import agents_app, who_runs_this
from hub.cli.migrate import ConfigOption
from hub.config import HubConfig, load_config
from hub.devices import BrokerIdentities, Dynsec, Identity, IdentityKind
from hub.devices.enrolment import Enrolments
from hub.devices.watch import Watch
from hub.errors import ConfigError, MillstreamHubError
from hub.ingest.owners import Owners
from hub.sql import open_database

__all__ = ["register"]

_T = TypeVar("_T")

devices_app = typer.Typer(
    name="devices",
    no_args_is_help=True,
    help="""MQTT devices that publish to this hub, each with a broker identity of its own.

Each identity is made in the broker through Mosquitto's dynamic security plugin — no ACL file
to edit, no broker restart — and may publish only for its own machines and read only its own
receipts. The password is shown once. Run `setup` once first, as the hub's broker user
(it must hold the plugin's admin role).

\b
    $ millstream-hub devices setup
    $ millstream-hub devices add press-gw --site plant-a --line line-3 --machine press-01
    $ millstream-hub devices disable press-gw
    $ millstream-hub devices rotate press-gw
""",
)

NameArg = Annotated[str, typer.Argument(help="The broker user name (also its `src` by default).")]
Site = Annotated[str, typer.Option("--site", help="The site it publishes for.")]
Line = Annotated[str, typer.Option("--line", help="The line it publishes for.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]


def _run(config: Path | None, op: Callable[[HubConfig, BrokerIdentities], Awaitable[_T]]) -> _T:
    async def go(cfg: HubConfig) -> _T:
        async with open_database(cfg.storage, max_connections=1) as db, Dynsec(cfg.mqtt) as ds:
            return await op(cfg, BrokerIdentities(db, ds, lambda: time.time_ns() // 1_000_000))

    try:
        return asyncio.run(go(load_config(config)))
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    except (MillstreamHubError, ValueError) as exc:
        typer.echo(f"failed: {exc}", err=True)
        raise typer.Exit(1) from exc


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _describe(i: Identity) -> dict[str, object]:
    return {
        "name": i.name,
        "kind": i.kind,
        "site": i.site,
        "line": i.line,
        "machines": list(i.machines) if i.kind == "device" else "*",
        "src": i.src,
        "disabled": i.disabled,
        "created_at": _when(i.created_at),
        "created_by": i.created_by,
        "auth": i.auth,
    }


def _identity(*args: object) -> Identity:
    try:
        return Identity(*args)  # type: ignore[arg-type]
    except ValueError as exc:
        typer.echo(f"failed: {exc}", err=True)
        raise typer.Exit(1) from exc


def _added(identity: Identity, password: str, as_json: bool) -> None:
    if as_json:
        secret = {"password": password} if password else {}
        typer.echo(json.dumps({**_describe(identity), **secret}))
        return
    where = ", ".join(identity.machines) if identity.kind == "device" else "every machine"
    typer.echo(
        f"{identity.kind} {identity.name} added: publishes for {identity.site}/{identity.line}"
        f" ({where}) as src {identity.src}"
    )
    if identity.auth == "certificate":
        typer.echo(
            "it logs in with a client certificate, no password: issue it where the site CA's"
            f" key is kept,\n    packaging/mosquitto/make-certs.sh --client {identity.name}\n"
            "and give the device its .crt and .key and ca.crt; it connects to the broker's"
            " certificate port (8884) with no user name"
        )
        return
    typer.echo(f"password (shown once; give it to the {identity.kind} now): {password}")


def _register_common(app: typer.Typer, kind: IdentityKind) -> None:
    """list, show, disable, enable, rotate, remove: the same for devices and agents."""

    @app.command("list")
    def list_(config: ConfigOption = None, as_json: JsonOut = False) -> None:
        """Every identity of this kind, with where it may publish."""
        found = [i for i in _run(config, lambda _c, ids: ids.list()) if i.kind == kind]
        if as_json:
            typer.echo(json.dumps([_describe(i) for i in found]))
            return
        if not found:
            typer.echo(f"no {kind}s yet: `millstream-hub {kind}s add --help` makes one")
        for i in found:
            state = "DISABLED" if i.disabled else "enabled"
            machines = ",".join(i.machines) or "*"
            typer.echo(f"{i.name:24} {state:8} {i.site}/{i.line}/{machines}  src={i.src}")

    @app.command()
    def show(name: NameArg, config: ConfigOption = None) -> None:
        """One identity in full (never its password: the broker keeps only a hash)."""
        found = _run(config, lambda _c, ids: ids.get(name))
        typer.echo(json.dumps(_describe(found), indent=2))

    @app.command()
    def disable(name: NameArg, config: ConfigOption = None) -> None:
        """Cut it off now: the broker disconnects it and refuses it until `enable`."""
        _run(config, lambda _c, ids: ids.set_disabled(name, True))
        typer.echo(f"{kind} {name} disabled: disconnected and refused by the broker")

    @app.command()
    def enable(name: NameArg, config: ConfigOption = None) -> None:
        """Let a disabled identity connect again (with its current password)."""
        _run(config, lambda _c, ids: ids.set_disabled(name, False))
        typer.echo(f"{kind} {name} enabled")

    @app.command()
    def rotate(name: NameArg, config: ConfigOption = None, as_json: JsonOut = False) -> None:
        """A new password; the old one stops working at once."""
        password = _run(config, lambda _c, ids: ids.rotate(name))
        if as_json:
            typer.echo(json.dumps({"name": name, "password": password}))
        else:
            typer.echo(f"new password for {name} (shown once; the old one no longer works):")
            typer.echo(password)

    @app.command()
    def remove(name: NameArg, config: ConfigOption = None) -> None:
        """Delete the identity from the broker and the hub (its stored data stays)."""
        _run(config, lambda _c, ids: ids.remove(name))
        typer.echo(f"{kind} {name} removed")


@devices_app.command()
def setup(config: ConfigOption = None) -> None:
    """Give the hub's broker user (mqtt.username) the role it needs to read every publisher."""

    async def op(cfg: HubConfig, ids: BrokerIdentities) -> str:
        if not cfg.mqtt.username:
            raise MillstreamHubError(
                "mqtt.username is not set in the hub config: name the hub's broker user"
                " (e.g. mqtt: {username: hub}), the one `mosquitto_ctrl dynsec init` made admin"
            )
        await ids.setup(cfg.mqtt.username)
        return cfg.mqtt.username

    user = _run(config, op)
    typer.echo(f"broker user {user} holds the millstream-hub role")


@devices_app.command()
def add(  # noqa: PLR0917 -- typer maps parameters to CLI options
    name: NameArg,
    site: Site,
    line: Line,
    machine: Annotated[
        list[str], typer.Option("--machine", help="A machine it publishes for (repeat).")
    ],
    src: Annotated[str, typer.Option(help="Its `src` in payloads (default: the name).")] = "",
    certificate: Annotated[
        bool,
        typer.Option(
            "--certificate",
            help="It logs in with a client certificate from the site CA (make-certs.sh "
            "--client NAME) on the broker's certificate port, not a password.",
        ),
    ] = False,
    config: ConfigOption = None,
    as_json: JsonOut = False,
) -> None:
    """Make a device's broker identity; prints its password once (or, with --certificate, how
    to issue its certificate)."""
    identity = _identity(name, "device", site, line, tuple(machine), src)
    if certificate:
        identity = replace(identity, auth="certificate")
    _added(identity, _run(config, lambda _c, ids: ids.add(identity, who_runs_this())), as_json)


@devices_app.command("watch")
def watch_device(
    name: NameArg,
    count: Annotated[
        int, typer.Option(min=0, help="Stop after this many messages (0: until Ctrl-C).")
    ] = 0,
    config: ConfigOption = None,
) -> None:
    """Show a device's messages live as the hub judges them: accepted (and stored), or refused
    with the reason and the field. For device makers developing against a real hub."""

    async def go(cfg: HubConfig) -> None:
        async with open_database(cfg.storage, max_connections=1) as db:
            ids = BrokerIdentities(db, None, lambda: time.time_ns() // 1_000_000)
            identity = await ids.get(name)
            owners = Owners.of(await ids.list())
            seen = 0
            async with Watch(cfg.mqtt, db, identity, owners) as judged_messages:
                typer.echo(f"watching {name}: publish now (Ctrl-C stops)", err=True)
                async for judged in judged_messages:
                    typer.echo(judged.line())
                    seen += 1
                    if count and seen >= count:
                        return

    try:
        asyncio.run(go(load_config(config)))
    except KeyboardInterrupt:
        return
    except TimeoutError:
        typer.echo("failed: the broker did not accept the subscription: check mqtt.*", err=True)
        raise typer.Exit(1) from None
    except (ConfigError, MillstreamHubError) as exc:
        typer.echo(f"failed: {exc}", err=True)
        raise typer.Exit(1) from exc


EnrolOption = Annotated[
    bool,
    typer.Option(
        "--enrol",
        help="Print a one-time enrolment token instead of the password: on the line PC, "
        "`edge-agent init --hub URL --token TOKEN` fetches the agent's credentials with it.",
    ),
]
BrokerUrl = Annotated[
    str,
    typer.Option(
        help="The broker URL as the agent reaches it (default: this hub's mqtt.url).",
    ),
]
HubUrl = Annotated[
    str,
    typer.Option(
        help="This hub's API as the line PC reaches it, for the command printed (default: "
        "http://THIS-HOST:8080)."
    ),
]
ValidHours = Annotated[
    int, typer.Option(min=1, max=720, help="Hours the token works (it works once).")
]


@agents_app.command("add")
def add_agent(  # noqa: PLR0917 -- typer maps parameters to CLI options
    name: Annotated[str, typer.Argument(help="The agent id (agent.id in its agent.yaml).")],
    site: Site,
    line: Line,
    enrol: EnrolOption = False,
    broker_url: BrokerUrl = "",
    hub_url: HubUrl = "",
    valid_hours: ValidHours = 24,
    config: ConfigOption = None,
    as_json: JsonOut = False,
) -> None:
    """Make an agent's broker identity (any machine of its line); prints its password once, or
    with --enrol a one-time token the agent fetches its credentials with."""
    identity = _identity(name, "agent", site, line)
    if not enrol:
        password = _run(config, lambda _c, ids: ids.add(identity, who_runs_this()))
        _added(identity, password, as_json)
        return

    async def op(cfg: HubConfig, ids: BrokerIdentities) -> tuple[str, str]:
        await ids.add(identity, who_runs_this())  # its password is replaced when enrolled
        return await _issue(cfg, ids, identity, broker_url, valid_hours)

    token, url = _run(config, op)
    _enrolment(identity, token, url, hub_url, valid_hours, as_json)


@agents_app.command("enrol")
def enrol_agent(  # noqa: PLR0917 -- typer maps parameters to CLI options
    name: Annotated[str, typer.Argument(help="The agent id (agent.id in its agent.yaml).")],
    broker_url: BrokerUrl = "",
    hub_url: HubUrl = "",
    valid_hours: ValidHours = 24,
    config: ConfigOption = None,
    as_json: JsonOut = False,
) -> None:
    """A new one-time enrolment token for an agent (a new PC, a lost token): an earlier unused
    token stops working; its password changes only when the token is used."""

    async def op(cfg: HubConfig, ids: BrokerIdentities) -> tuple[Identity, str, str]:
        identity = await ids.get(name)
        return (identity, *await _issue(cfg, ids, identity, broker_url, valid_hours))

    identity, token, url = _run(config, op)
    _enrolment(identity, token, url, hub_url, valid_hours, as_json)


async def _issue(
    cfg: HubConfig, ids: BrokerIdentities, identity: Identity, broker_url: str, hours: int
) -> tuple[str, str]:
    url = broker_url or cfg.mqtt.url
    token = await Enrolments(ids.db, ids.now_ms).issue(
        identity, url, who_runs_this(), hours * 3600 * 1000
    )
    return token, url


def _enrolment(  # noqa: PLR0917 -- one line of output per argument
    identity: Identity, token: str, broker_url: str, hub_url: str, hours: int, as_json: bool
) -> None:
    # The name this machine goes by, as a start: behind a proxy or NAT pass --hub-url.
    hub_url = hub_url or f"http://{socket.gethostname()}:8080"
    command = f"edge-agent init --hub {hub_url} --token {token}"
    if as_json:
        typer.echo(json.dumps({**_describe(identity), "token": token, "command": command}))
        return
    typer.echo(
        f"agent {identity.name} may publish for {identity.site}/{identity.line}; it will reach"
        f" the broker at {broker_url}"
    )
    if urlsplit(broker_url).hostname in {"127.0.0.1", "localhost", "::1"}:
        typer.echo(
            f"note: {broker_url} is this machine's loopback; a line PC cannot reach it there."
            " Pass --broker-url with the address the PC uses.",
            err=True,
        )
    typer.echo(f"enrolment token (works once, for {hours} h): {token}")
    typer.echo(f"on the line PC run:\n    {command}")


_register_common(devices_app, "device")
_register_common(agents_app, "agent")


def register(app: typer.Typer) -> None:
    """Add the `devices` command group (agents' commands join `agents`)."""
    app.add_typer(devices_app)
