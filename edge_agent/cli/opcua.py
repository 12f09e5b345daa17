"""`edge-agent opcua cert|trust`: the certificate handshake between the agent and a PLC; and
`probe` for an OPC-UA device (`probe_opcua`)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from asyncua import ua
from cryptography import x509

import wire
from edge_agent.cli.common import fail, load_or_exit
from edge_agent.config import LoadedConfig, state_dir
from edge_agent.drivers.base import Sample
from edge_agent.drivers.opcua.certs import ensure_app_certificate, first_certificate, thumbprints
from edge_agent.drivers.opcua.security import parse_security
from edge_agent.drivers.opcua.trust import PinStore
from edge_agent.errors import ConfigError, ConfigProblem, MillstreamAgentError
from edge_agent.runtime.registry import build_driver

if TYPE_CHECKING:
    from edge_agent.drivers.opcua.driver import OpcuaDriver

__all__ = ["opcua_of", "probe_opcua", "register"]

# How long probe waits for the server to re-send its conditions (ConditionRefresh).
_REFRESH_WAIT_S = 5.0

opcua_app = typer.Typer(
    name="opcua",
    help="OPC-UA certificates: show the agent's own, accept a server's changed one.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def probe_opcua(driver: OpcuaDriver, *, as_json: bool) -> None:
    """`edge-agent probe` for an OPC-UA device: read every tag once, table or `--json`."""
    try:
        rows, conditions = asyncio.run(_probe_once(driver))
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
        if conditions is not None:
            typer.echo("")
            typer.echo(_conditions_table(conditions))
    if rows and all(s.quality != "good" for s, _, _ in rows):
        raise typer.Exit(1)


def _conditions_table(conditions: list[wire.MachineEvent]) -> str:
    """The conditions the server retains (after ConditionRefresh), one line each."""
    if not conditions:
        return "conditions: none active or waiting for acknowledgement"
    lines = [f"conditions ({len(conditions)}):"]
    for event in conditions:
        when = dt.datetime.fromtimestamp(event.ts / 1000, dt.UTC).isoformat(timespec="seconds")
        lines.append(
            f"  {event.state or '-':<9}  severity {event.severity:<4}  {event.source}: "
            f"{event.message or event.type}  (since {when}, {event.fields.get('condition', '')})"
        )
    return "\n".join(lines)


async def _probe_once(
    driver: OpcuaDriver,
) -> tuple[list[tuple[Sample, str | None, str]], list[wire.MachineEvent] | None]:
    """Every tag read once; and with `events:` in the profile, the conditions the server
    retains (None without)."""
    from edge_agent.drivers.opcua.alarms import ConditionTracker, select_names  # noqa: PLC0415
    from edge_agent.drivers.opcua.session import OpcuaSession  # noqa: PLC0415

    names = select_names(driver.events.fields if driver.events else ())
    tracker = ConditionTracker(names, {}, driver.options.clock_ms)
    latest: dict[str, wire.MachineEvent] = {}
    refreshed = asyncio.Event()
    event_type = names.index("EventType")
    refresh_end = ua.NodeId(ua.Int32(ua.ObjectIds.RefreshEndEventType))

    def on_events(notifications: list[list[object]]) -> None:
        for values in notifications:
            for event in tracker.see(values).events:
                condition = event.fields.get("condition")
                if isinstance(condition, str):
                    latest[condition] = event
            if values[event_type] == refresh_end:
                refreshed.set()

    session = OpcuaSession(
        driver.device,
        driver.endpoint,
        driver.points,
        driver.options,
        events=driver.events,
        on_events=on_events,
        on_refresh_failed=refreshed.set,
    )
    # No data subscriptions: probe reads once, like a poll.
    await session.open(subscribe=False)
    try:
        samples = await session.read()
        if driver.events is not None:
            await session.subscribe_events()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(refreshed.wait(), _REFRESH_WAIT_S)
    finally:
        await session.aclose()
    nodes = {tag: node.to_string() for tag, node in session.nodes.items()}
    rows = [(s, nodes.get(s.tag), session.unresolved.get(s.tag, "")) for s in samples]
    if driver.events is None:
        return rows, None
    retained = [e for c, e in latest.items() if c in tracker.occurrences]
    return rows, sorted(retained, key=lambda e: (-e.severity, e.ts))


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
    loaded = load_or_exit(config) if config else None
    folder = state or (state_dir(loaded.config, loaded.path) if loaded else Path("state"))
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
        dev = opcua_of(loaded, device)
        der = asyncio.run(_fetch_server_certificate(dev))
    except MillstreamAgentError as exc:
        raise fail(exc) from exc
    store = PinStore(dev.options.state_dir)
    old = store.pinned(dev.device)
    sha256, sha1 = thumbprints(der)
    parsed = x509.load_der_x509_certificate(der)
    typer.echo(f"device {dev.device} at {dev.endpoint.url} presents:")
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
    store.pin(dev.device, der, dev.endpoint.url)
    typer.echo(f"trusted; the running agent uses it at its next reconnect ({store.folder})")


async def _fetch_server_certificate(dev: OpcuaDriver) -> bytes:
    # Imported here: asyncua is only needed when a command actually talks to a server.
    from asyncua import Client  # noqa: PLC0415

    from edge_agent.drivers.opcua.errors import map_error  # noqa: PLC0415

    spec = parse_security(dev.endpoint.security)
    timeout_s = dev.options.timeout_s
    client = Client(dev.endpoint.url, timeout=timeout_s)
    try:
        async with asyncio.timeout(timeout_s * 2):
            endpoints = await client.connect_and_get_server_endpoints()
    except Exception as exc:
        raise map_error(exc, dev.device) from exc
    for endpoint in endpoints:
        policy = endpoint.SecurityPolicyUri.rsplit("#", 1)[-1]
        if endpoint.ServerCertificate and (spec.policy is None or policy == spec.policy):
            return first_certificate(endpoint.ServerCertificate)
    raise MillstreamAgentError(f"{dev.device}: the server offers no certificate for {spec}")


def opcua_of(loaded: LoadedConfig, machine: str) -> OpcuaDriver:
    """The OPC-UA driver of `machine` (from the protocol registry); ConfigError if it is not one."""
    from edge_agent.drivers.opcua.driver import OpcuaDriver  # noqa: PLC0415 -- import cost

    driver = build_driver(loaded, machine)
    if not isinstance(driver, OpcuaDriver):
        raise ConfigError(
            [
                ConfigProblem(
                    str(loaded.path),
                    f"device {machine}",
                    "is not an OPC-UA device",
                    "pick a device with opcua:",
                )
            ]
        )
    return driver


def register(app: typer.Typer) -> None:
    """Add the `opcua` command group to `app`."""
    app.add_typer(opcua_app)
