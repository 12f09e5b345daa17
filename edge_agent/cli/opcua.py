"""`edge-agent opcua cert|trust`: the certificate handshake between the agent and a PLC.

Also holds the glue from a loaded config to the OPC-UA driver (`opcua_device`), shared by
`browse` and `probe`, so the driver itself never sees pydantic models.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509

from edge_agent.config import LoadedConfig, OpcUaProfile, load_agent_config, opcua_points
from edge_agent.drivers.base import Sample
from edge_agent.drivers.opcua.certs import ensure_app_certificate, first_certificate, thumbprints
from edge_agent.drivers.opcua.points import OpcuaEndpoint, OpcuaPoint
from edge_agent.drivers.opcua.security import parse_security
from edge_agent.drivers.opcua.trust import PinStore
from edge_agent.errors import ConfigError, ConfigProblem, DeviceUnavailable, MillstreamAgentError
from millstream_common.logjson import hide_secret

__all__ = [
    "OpcuaDevice",
    "fail",
    "is_opcua_device",
    "load_or_exit",
    "opcua_device",
    "probe_opcua",
    "register",
    "state_dir",
]

opcua_app = typer.Typer(
    name="opcua",
    help="OPC-UA certificates: show the agent's own, accept a server's changed one.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@dataclass(frozen=True, slots=True)
class OpcuaDevice:
    """Everything the OPC-UA driver needs for one configured device."""

    name: str
    endpoint: OpcuaEndpoint
    points: tuple[OpcuaPoint, ...]
    state_dir: Path
    timeout_s: float


def state_dir(loaded: LoadedConfig) -> Path:
    """The agent's state folder; relative paths are relative to the config file."""
    path = Path(loaded.config.state_dir)
    return path if path.is_absolute() else loaded.path.parent / path


def opcua_device(
    loaded: LoadedConfig, machine: str, environ: Mapping[str, str] = os.environ
) -> OpcuaDevice:
    """Find `machine` in the config and build the driver's inputs; ConfigError if impossible."""
    for resolved in loaded.devices:
        if resolved.device.machine != machine:
            continue
        conn = resolved.device.opcua
        if conn is None or not isinstance(resolved.profile, OpcUaProfile):
            raise _problem(loaded, machine, "is not an OPC-UA device", "pick a device with opcua:")
        password = None
        if conn.password_env:
            password = environ.get(conn.password_env)
            if password is None:
                raise _problem(
                    loaded,
                    machine,
                    f"environment variable {conn.password_env} is not set",
                    f"export {conn.password_env}=… (the OPC-UA password) before running",
                )
        hide_secret(password)  # whatever logs later (asyncua included) never shows it
        endpoint = OpcuaEndpoint(conn.url, conn.security, conn.username, password)
        return OpcuaDevice(
            machine,
            endpoint,
            tuple(opcua_points(resolved.profile)),
            state_dir(loaded),
            conn.timeout_ms / 1000,
        )
    names = ", ".join(d.device.machine for d in loaded.devices) or "none"
    raise _problem(loaded, machine, "no such device", f"devices in this config: {names}")


def is_opcua_device(loaded: LoadedConfig, machine: str) -> bool:
    """True when `machine` is configured with an `opcua:` connection."""
    return any(d.device.machine == machine and d.device.opcua is not None for d in loaded.devices)


def probe_opcua(loaded: LoadedConfig, machine: str, *, as_json: bool) -> None:
    """`edge-agent probe` for an OPC-UA device: read every tag once, table or `--json`."""
    try:
        dev = opcua_device(loaded, machine)
        rows = asyncio.run(_probe_once(dev))
    except MillstreamAgentError as exc:
        raise fail(exc) from exc
    if as_json:
        # Same shape as for Modbus; `raw` is the node id the tag resolved to (null if none).
        payload = [
            {"tag": s.tag, "value": s.value, "quality": s.quality, "raw": node}
            for s, node, _ in rows
        ]
        typer.echo(json.dumps(payload, ensure_ascii=False))
    else:
        width = max((len(s.tag) for s, _, _ in rows), default=3)
        header = f"{'tag':<{width}}  {'value':<20}  {'quality':<9}  {'source time (UTC)':<29}  node"
        typer.echo(header)
        for sample, node, note in rows:
            when = dt.datetime.fromtimestamp(sample.ts / 1000, dt.UTC).isoformat(
                timespec="milliseconds"
            )
            typer.echo(
                f"{sample.tag:<{width}}  {sample.value!r:<20}  {sample.quality:<9}  {when}  "
                f"{node or '-'}{f'  ({note})' if note else ''}"
            )
    if rows and all(s.quality != "good" for s, _, _ in rows):
        raise typer.Exit(1)


async def _probe_once(dev: OpcuaDevice) -> list[tuple[Sample, str | None, str]]:
    from edge_agent.drivers.opcua.session import OpcuaSession, SessionOptions  # noqa: PLC0415

    options = SessionOptions(state_dir=dev.state_dir, timeout_s=dev.timeout_s)
    session = OpcuaSession(dev.name, dev.endpoint, dev.points, options)
    # No subscriptions: probe reads once, like a poll.
    await session.open(subscribe=False)
    try:
        samples = await session.read()
    finally:
        await session.aclose()
    nodes = {tag: node.to_string() for tag, node in session.nodes.items()}
    return [(s, nodes.get(s.tag), session.unresolved.get(s.tag, "")) for s in samples]


def _problem(loaded: LoadedConfig, machine: str, message: str, hint: str) -> ConfigError:
    return ConfigError([ConfigProblem(str(loaded.path), f"device {machine}", message, hint)])


def fail(exc: MillstreamAgentError) -> typer.Exit:
    """Print an error the way a technician reads it and return the exit to raise."""
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
    else:
        typer.echo(f"error: {exc}", err=True)
        if isinstance(exc, DeviceUnavailable) and exc.hint:
            typer.echo(f"next: {exc.hint}", err=True)
    return typer.Exit(1)


def load_or_exit(config: Path) -> LoadedConfig:
    """Load and validate the config, or print its problems and exit 1."""
    try:
        return load_agent_config(config, os.environ)
    except ConfigError as exc:
        raise fail(exc) from exc


@opcua_app.command("cert")
def cert(
    config: Annotated[
        Path | None, typer.Argument(help="Agent config (its state_dir holds the certificate).")
    ] = None,
    state: Annotated[
        Path | None, typer.Option("--state-dir", help="State folder, instead of a config.")
    ] = None,
) -> None:
    """Print the agent's certificate path and thumbprints (created on first use)."""
    folder = state or (state_dir(load_or_exit(config)) if config else Path("state"))
    own = ensure_app_certificate(folder)
    der = own.cert_path.read_bytes()
    sha256, sha1 = thumbprints(der)
    parsed = x509.load_der_x509_certificate(der)
    typer.echo(f"certificate: {own.cert_path.resolve()}")
    typer.echo(f"application URI: {own.application_uri}")
    typer.echo(f"SHA-256: {sha256}")
    typer.echo(f"SHA-1:   {sha1}")
    typer.echo(f"valid until: {parsed.not_valid_after_utc:%Y-%m-%d}")
    typer.echo(
        "Give this file to the PLC administrator (or accept it in the server's rejected-"
        "certificates list) and compare the SHA-1 thumbprint the PLC shows."
    )


@opcua_app.command("trust")
def trust(
    config: Annotated[Path, typer.Argument(help="Agent config file.")],
    device: Annotated[str, typer.Option("--device", help="Machine name from the config.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Do not ask; accept what is presented.")
    ] = False,
) -> None:
    """Fetch the server's current certificate, show it, and pin it (after a PLC swap or renewal)."""
    loaded = load_or_exit(config)
    try:
        dev = opcua_device(loaded, device)
        der = asyncio.run(_fetch_server_certificate(dev))
    except MillstreamAgentError as exc:
        raise fail(exc) from exc
    store = PinStore(dev.state_dir)
    old = store.pinned(dev.name)
    sha256, sha1 = thumbprints(der)
    parsed = x509.load_der_x509_certificate(der)
    typer.echo(f"device {dev.name} at {dev.endpoint.url} presents:")
    typer.echo(f"  subject: {parsed.subject.rfc4514_string()}")
    typer.echo(f"  SHA-256: {sha256}")
    typer.echo(f"  SHA-1:   {sha1}")
    typer.echo(f"  pinned before: {old or 'nothing'}")
    if old == sha256:
        typer.echo("already trusted; nothing to do")
        return
    if not yes and not typer.confirm("Trust this certificate?", default=False):
        typer.echo("not trusted")
        raise typer.Exit(1)
    store.pin(dev.name, der, dev.endpoint.url)
    typer.echo(f"trusted; the running agent uses it at its next reconnect ({store.folder})")


async def _fetch_server_certificate(dev: OpcuaDevice) -> bytes:
    # Imported here: asyncua is only needed when a command actually talks to a server.
    from asyncua import Client  # noqa: PLC0415

    from edge_agent.drivers.opcua.errors import map_error  # noqa: PLC0415

    spec = parse_security(dev.endpoint.security)
    client = Client(dev.endpoint.url, timeout=dev.timeout_s)
    try:
        async with asyncio.timeout(dev.timeout_s * 2):
            endpoints = await client.connect_and_get_server_endpoints()
    except Exception as exc:
        raise map_error(exc, dev.name) from exc
    for endpoint in endpoints:
        policy = endpoint.SecurityPolicyUri.rsplit("#", 1)[-1]
        if endpoint.ServerCertificate and (spec.policy is None or policy == spec.policy):
            return first_certificate(endpoint.ServerCertificate)
    raise MillstreamAgentError(f"{dev.name}: the server offers no certificate for {spec}")


def register(app: typer.Typer) -> None:
    """Add the `opcua` command group to `app`."""
    app.add_typer(opcua_app)
