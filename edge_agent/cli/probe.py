"""`edge-agent probe CONFIG --device MACHINE`: read one device once and show everything.

The commissioning tool: raw registers next to the decoded value, and for multi-register
numbers the value in all four word/byte orders with the configured one marked and the
implausible ones flagged, so a wrong order or a 4xxxx-style off-by-one shows at a glance.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from edge_agent.cli.common import driver_or_exit, fail
from edge_agent.cli.enip import probe_enip
from edge_agent.cli.opcua import probe_opcua
from edge_agent.cli.s7 import probe_s7
from edge_agent.drivers.enip.driver import EnipDriver
from edge_agent.drivers.modbus.codec import (
    MULTI_REGISTER_NUMERIC,
    ORDERS,
    all_orders,
    implausibility,
    scale_value,
)
from edge_agent.drivers.modbus.driver import ModbusDriver, PointReading
from edge_agent.drivers.modbus.points import ModbusPoint
from edge_agent.drivers.s7.driver import S7Driver
from edge_agent.errors import MillstreamAgentError

if TYPE_CHECKING:
    from edge_agent.drivers.opcua.driver import OpcuaDriver

__all__ = [
    "probe",
    "probe_json",
    "probe_table",
    "register",
]

_HELP = """Read one device once and print every tag: for Modbus the raw registers, decoded value,
and for multi-register numbers the value in all four orders (* = configured, ! = implausible);
for S7 the address and its bytes; for EtherNet/IP the controller's tag name; for OPC-UA the
node each tag resolved to.

Example:

\b
    $ edge-agent probe examples/agent.yaml --device meter-01
    $ edge-agent probe examples/agent.yaml --device meter-01 --json
"""


def _raw_hex(raw: Sequence[int] | None, point: ModbusPoint) -> str:
    if raw is None:
        return "-"
    if point.is_bit:
        return " ".join(str(b) for b in raw)
    return " ".join(f"{r:04X}" for r in raw)


def _shown(value: Any, unit: str | None) -> str:
    if value is None:
        return "-"
    text = f"{value:.7g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}" if unit else text


def _orders_line(reading: PointReading) -> str | None:
    point, raw = reading.point, reading.raw
    if raw is None or point.type not in MULTI_REGISTER_NUMERIC:
        return None
    parts = []
    for order, value in all_orders(raw, point.type).items():
        scaled = scale_value(value, point.scale, point.offset)
        mark = "*" if order == point.order else " "
        why = implausibility(scaled, point.type)
        flag = f" !{why}" if why else ""
        parts.append(f"{mark}{order}={_shown(scaled, None)}{flag}")
    return "    orders: " + "  ".join(parts)


def probe_table(readings: Sequence[PointReading]) -> str:
    """The human table: one row per tag, plus an orders line for multi-register numbers."""
    header = ("tag", "table", "addr", "type", "order", "raw", "value", "quality")
    rows: list[tuple[tuple[str, ...], str | None]] = []
    for r in readings:
        p = r.point
        where = str(p.address) if p.bit is None else f"{p.address}.{p.bit}"
        cells: tuple[str, ...] = (
            p.name,
            p.table,
            where,
            p.type if p.length is None else f"{p.type}[{p.length}]",
            "" if p.type == "bool" else p.order,
            _raw_hex(r.raw, p),
            _shown(r.sample.value, p.unit),
            r.sample.quality,
        )
        rows.append((cells, _orders_line(r)))
    widths = [max(len(h), *(len(c[i]) for c, _ in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for cells, orders in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        if orders:
            lines.append(orders)
    bad = sum(1 for r in readings if r.sample.quality != "good")
    lines.append(f"{len(readings)} tags, {len(readings) - bad} good, {bad} bad")
    if any(r.point.type in MULTI_REGISTER_NUMERIC for r in readings):
        lines.append(f"orders: * configured, ! implausible ({'/'.join(ORDERS)})")
    return "\n".join(lines)


def probe_json(readings: Sequence[PointReading]) -> list[dict[str, Any]]:
    """The `--json` form: one {"tag", "value", "quality", "raw"} object per tag."""
    return [
        {
            "tag": r.point.name,
            "value": r.sample.value,
            "quality": r.sample.quality,
            "raw": list(r.raw) if r.raw is not None else None,
        }
        for r in readings
    ]


async def _read_once(driver: ModbusDriver) -> list[PointReading]:
    async with driver:
        readings = await driver.read_raw()
    # Requests come back grouped by table and address; the technician reads the profile order.
    position = {p.name: i for i, p in enumerate(driver.points)}
    return sorted(readings, key=lambda r: position[r.point.name])


def probe(
    config: Annotated[Path, typer.Argument(help="Agent config file.")],
    device: Annotated[str, typer.Option("--device", help="Machine name from the config.")],
    as_json: Annotated[
        bool, typer.Option("--json", help='Print [{"tag","value","quality","raw"}, ...].')
    ] = False,
) -> None:
    """Read one Modbus device once and print every tag with raw registers and all orders."""
    driver = driver_or_exit(config, device)
    if isinstance(driver, S7Driver):
        probe_s7(driver, as_json=as_json)
        return
    if isinstance(driver, EnipDriver):
        probe_enip(driver, as_json=as_json)
        return
    if not isinstance(driver, ModbusDriver):
        probe_opcua(cast("OpcuaDriver", driver), as_json=as_json)  # the only other protocol
        return
    # The table says what went wrong per tag; library chatter would only bury it.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("edge_agent.drivers").setLevel(logging.ERROR)
    logging.getLogger("edge_agent.device").setLevel(logging.ERROR)
    try:
        readings = asyncio.run(_read_once(driver))
    except MillstreamAgentError as exc:
        raise fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(probe_json(readings), ensure_ascii=False))
    else:
        typer.echo(probe_table(readings))
    if readings and all(r.sample.quality != "good" for r in readings):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the `probe` command to `app`."""
    app.command("probe", help=_HELP)(probe)
