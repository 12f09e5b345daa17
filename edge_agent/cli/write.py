"""`edge-agent write CONFIG --device MACHINE --tag TAG VALUE`: write one tag from the line PC.

For commissioning: the same checks as a command from the hub (the profile's `writable`,
`min`/`max`, the tag's type), the value before, and the value read back after.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.cli.common import driver_or_exit, fail
from edge_agent.drivers.base import Value, WritingDriver
from edge_agent.errors import MillstreamAgentError, WriteRefused

__all__ = ["parse_value", "register", "write"]

_HELP = """Write one tag of one device, as a command from the hub would, and read it back.

The tag must say writable: true in its device profile, and a number must lie within the tag's
min and max. VALUE is read as JSON where it can be (42.5, true, 7), else as text.

Example:

\b
    $ edge-agent write examples/agent.yaml --device oven-01 --tag zone1_setpoint 185
    $ edge-agent write examples/agent.yaml --device press-01 --tag running false --yes
"""


def parse_value(text: str) -> Value:
    """`42.5` → 42.5, `true` → True, `"7"` → "7", anything else as it is typed."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, bool | int | float | str) else text


async def _write(driver: WritingDriver, tag: str, value: Value, yes: bool) -> tuple[Value, Value]:
    await driver.connect()
    try:
        if not yes:
            now = await driver.read_tag(tag)
            question = f"write {value!r} to {tag} (now {now!r})?"
            if not await asyncio.to_thread(typer.confirm, question):
                raise typer.Exit(1)
        return await driver.write(tag, value)
    finally:
        await driver.close()


def write(
    config: Annotated[Path, typer.Argument(help="Agent config file.")],
    value: Annotated[str, typer.Argument(help="The new value (engineering units).")],
    device: Annotated[str, typer.Option("--device", help="Machine name from the config.")],
    tag: Annotated[str, typer.Option("--tag", help="Tag name from the device's profile.")],
    yes: Annotated[bool, typer.Option("--yes", help="Write without asking first.")] = False,
) -> None:
    """Write one tag of one device and print the value before and read back."""
    driver = driver_or_exit(config, device)
    if not isinstance(driver, WritingDriver):
        typer.echo(f"error: {device}: its protocol cannot write yet", err=True)
        typer.echo("next: writes work on Modbus and OPC-UA devices (docs/commands.md)", err=True)
        raise typer.Exit(1)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    new = parse_value(value)
    try:
        previous, read_back = asyncio.run(_write(driver, tag, new, yes))
    except WriteRefused as exc:
        typer.echo(f"refused: {exc}", err=True)
        typer.echo(
            "next: writable: true, min and max of the tag are set in its device profile "
            "(docs/commands.md); edge-agent validate checks it",
            err=True,
        )
        raise typer.Exit(1) from exc
    except MillstreamAgentError as exc:
        raise fail(exc) from exc
    typer.echo(f"{device}.{tag}: {previous!r} → {read_back!r} (wrote {new!r})")
    if read_back != new:
        typer.echo("note: the value read back differs from the one written", err=True)


def register(app: typer.Typer) -> None:
    """Add the `write` command to `app`."""
    app.command("write", help=_HELP)(write)
