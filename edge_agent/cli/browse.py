"""`edge-agent browse CONFIG --device X`: walk an OPC-UA server's address space, or list a Logix
controller's tags (EtherNet/IP), and write a profile.

Commissioning starts here: the technician sees the machine's variables with data types and live
values, and `--profile-out` turns what is under a path into a profile skeleton with browse paths
(which survive node id changes after a PLC download). For an `enip:` device it is the
controller's tag list — controller and program tags with types and array sizes — and the
skeleton addresses them by name (edge_agent/drivers/enip/tag_list.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from edge_agent.cli.common import fail, load_or_exit
from edge_agent.cli.enip import browse_enip
from edge_agent.drivers.enip.driver import EnipDriver
from edge_agent.drivers.opcua.browse_path import QualifiedName, format_browse_path
from edge_agent.drivers.opcua.browse_path import parse_browse_path as parse_path
from edge_agent.drivers.opcua.values import wire_value
from edge_agent.errors import ConfigError, ConfigProblem, MillstreamAgentError
from edge_agent.runtime.registry import build_driver

if TYPE_CHECKING:
    from edge_agent.drivers.opcua.driver import OpcuaDriver

__all__ = ["BrowsedNode", "browse", "profile_skeleton", "register", "tag_name"]


@dataclass(frozen=True, slots=True)
class BrowsedNode:
    """One node found while browsing; `data_type`/`value` only for variables."""

    depth: int
    path: tuple[QualifiedName, ...]
    node_id: str
    node_class: str
    data_type: str = ""
    value: Any = None
    # An object whose EventNotifier attribute says it reports events (`events.notifiers`).
    notifier: bool = False

    @property
    def browse_path(self) -> str:
        """The node's browse path from the Root folder."""
        return format_browse_path(list(self.path))


def tag_name(relative: tuple[QualifiedName, ...]) -> str:
    """A tag name from the path below the browse start: `Spindle/Speed` → `spindle_speed`."""
    raw = "_".join(name for _, name in relative) or "value"
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", raw).strip("_").lower()
    return (cleaned or "value")[:64]


def profile_skeleton(
    profile: str, url: str, start: tuple[QualifiedName, ...], nodes: list[BrowsedNode]
) -> dict[str, Any]:
    """A profile dict for every variable in `nodes`, addressed by browse path."""
    tags: list[dict[str, Any]] = []
    used: set[str] = set()
    for node in nodes:
        if node.node_class != "Variable":
            continue
        name = base = tag_name(node.path[len(start) :])
        suffix = 2
        while name in used:
            name, suffix = f"{base}_{suffix}", suffix + 1
        used.add(name)
        tags.append({"name": name, "browse_path": node.browse_path})
    skeleton: dict[str, Any] = {
        "profile": profile,
        "vendor": "TODO vendor",
        "model": "TODO model",
        "protocol": "opcua",
        "source": f"browsed from {url} on {dt.datetime.now(dt.UTC):%Y-%m-%d}",
        "defaults": {"mode": "subscribe", "sampling_ms": 1000},
        "tags": tags,
    }
    notifiers = [n.node_id for n in nodes if n.notifier]
    if notifiers:
        # The machine reports events there: its alarms become machine events (docs/events.md).
        skeleton["events"] = {"notifiers": notifiers}
    return skeleton


async def _walk(
    dev: OpcuaDriver, start: list[QualifiedName], depth: int, standard: bool
) -> list[BrowsedNode]:
    # Imported here: asyncua is only needed when a command actually talks to a server.
    from asyncua import ua  # noqa: PLC0415

    from edge_agent.drivers.opcua.session import OpcuaSession  # noqa: PLC0415

    found: list[BrowsedNode] = []
    async with OpcuaSession(dev.device, dev.endpoint, (), dev.options) as session:
        client = session.client

        async def timed(awaitable: Any) -> Any:
            async with asyncio.timeout(dev.options.timeout_s):
                return await awaitable

        root = client.nodes.root
        node = (
            await timed(root.get_child([f"{ns}:{name}" for ns, name in start])) if start else root
        )

        async def visit(current: Any, path: tuple[QualifiedName, ...], level: int) -> None:
            if level > depth:
                return
            for child in await timed(current.get_children()):
                name = await timed(child.read_browse_name())
                if not standard and name.NamespaceIndex == 0:
                    continue  # the Server object's diagnostics drown the machine's variables
                child_path = (*path, (name.NamespaceIndex, name.Name))
                node_class = await timed(child.read_node_class())
                data_type, value, notifier = "", None, False
                if node_class == ua.NodeClass.Object:
                    flags = await timed(child.read_event_notifier())
                    notifier = ua.EventNotifier.SubscribeToEvents in flags
                if node_class == ua.NodeClass.Variable:
                    type_id = await timed(child.read_data_type())
                    type_name = await timed(client.get_node(type_id).read_browse_name())
                    data_type = type_name.Name
                    data_value = await timed(child.read_data_value(raise_on_bad_status=False))
                    value = wire_value(data_value.Value.Value if data_value.Value else None)
                found.append(
                    BrowsedNode(
                        level,
                        child_path,
                        child.nodeid.to_string(),
                        node_class.name,
                        data_type,
                        value,
                        notifier,
                    )
                )
                await visit(child, child_path, level + 1)

        await visit(node, tuple(start), 1)
    return found


_HELP = """Show what a device offers, and with --profile-out write a profile skeleton of it.

OPC-UA (opcua: device): the tree of nodes under --path with data types and current values, and
the objects that report events (alarms); the skeleton addresses each variable by browse path and
subscribes to those objects' events (events.notifiers).

EtherNet/IP (enip: device, a Logix controller): the controller's tag list — controller tags and
program tags (Program:X.Tag) with their types and array sizes, UDT members indented. The skeleton
has one tag per value: UDT members by path (Filler.Motor.Current), array elements by index up to
--max-elements (Heads[0] …); what has no profile type is left out with the reason. --path,
--depth and --standard are OPC-UA's.

Example:

\b
    $ edge-agent browse agent.yaml --device cnc-07 --path /Objects/2:Machine --depth 3
    $ edge-agent browse agent.yaml --device filler-01 --profile-out filler-line.yaml
"""


def browse(  # noqa: PLR0917 -- typer maps parameters to CLI options
    config: Annotated[Path, typer.Argument(help="Agent config file.")],
    device: Annotated[str, typer.Option("--device", help="Machine name from the config.")],
    path: Annotated[str, typer.Option("--path", help="Where to start (OPC-UA).")] = "/Objects",
    depth: Annotated[int, typer.Option("--depth", min=1, help="Levels below --path (OPC-UA).")] = 3,
    profile_out: Annotated[
        Path | None,
        typer.Option("--profile-out", help="Write a profile skeleton for the variables found."),
    ] = None,
    standard: Annotated[
        bool, typer.Option("--standard", help="Also show namespace-0 (standard) nodes (OPC-UA).")
    ] = False,
    max_elements: Annotated[
        int,
        typer.Option(
            "--max-elements", min=1, help="Array elements per array in the skeleton (EtherNet/IP)."
        ),
    ] = 16,
) -> None:
    """Show what a device offers; write a profile skeleton of it (see --help)."""
    loaded = load_or_exit(config)
    try:
        driver = build_driver(loaded, device)
    except MillstreamAgentError as exc:
        raise fail(exc) from exc
    if isinstance(driver, EnipDriver):
        browse_enip(driver, profile_out, max_elements)
        return
    from edge_agent.drivers.opcua.driver import OpcuaDriver  # noqa: PLC0415 -- import cost

    if not isinstance(driver, OpcuaDriver):
        raise fail(
            ConfigError(
                [
                    ConfigProblem(
                        str(loaded.path),
                        f"device {device}",
                        "browse lists OPC-UA and EtherNet/IP devices only",
                        "pick a device with opcua: or enip:",
                    )
                ]
            )
        )
    try:
        start = parse_path(path) if path.strip("/") else []
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    try:
        dev = driver
        nodes = asyncio.run(_walk(dev, start, depth, standard))
    except MillstreamAgentError as exc:
        raise fail(exc) from exc
    for node in nodes:
        indent = "  " * (node.depth - 1)
        ns, name = node.path[-1]
        label = name if ns == 0 else f"{ns}:{name}"
        if node.node_class == "Variable":
            shown = repr(node.value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            typer.echo(f"{indent}{label}  [{node.data_type}] = {shown}  ({node.node_id})")
        else:
            events = ", reports events" if node.notifier else ""
            typer.echo(f"{indent}{label}  <{node.node_class}{events}>  ({node.node_id})")
    if profile_out is not None:
        skeleton = profile_skeleton(profile_out.stem, dev.endpoint.url, tuple(start), nodes)
        profile_out.write_text(yaml.safe_dump(skeleton, sort_keys=False, allow_unicode=True))
        typer.echo(f"wrote {len(skeleton['tags'])} tags to {profile_out}")
        if "events" in skeleton:
            typer.echo(
                f"its events: subscribed to the {len(skeleton['events']['notifiers'])} objects "
                "that report them (events.notifiers); delete `events:` to leave them out"
            )


def register(app: typer.Typer) -> None:
    """Add the `browse` command to `app`."""
    app.command("browse", help=_HELP)(browse)
