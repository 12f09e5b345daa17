"""`edge-agent probe` for an S7 device: every tag once, with its address and bytes."""

from __future__ import annotations

import asyncio
import json
import logging

import typer

from edge_agent.cli.common import fail
from edge_agent.drivers.base import Sample
from edge_agent.drivers.s7.driver import S7Driver, S7Point
from edge_agent.errors import MillstreamAgentError

__all__ = ["probe_s7"]


async def _read_once(driver: S7Driver) -> list[tuple[S7Point, bytes, Sample]]:
    async with driver:
        rows = await driver.read_raw()
    position = {p.name: i for i, p in enumerate(driver.points)}
    return sorted(rows, key=lambda r: position[r[0].name])


def probe_s7(driver: S7Driver, *, as_json: bool) -> None:
    """Read every tag once; a table, or `--json` in the shape Modbus and OPC-UA use (`raw`:
    the tag's bytes in hex, as the PLC keeps them)."""
    logging.getLogger("snap7").setLevel(logging.CRITICAL)
    try:
        rows = asyncio.run(_read_once(driver))
    except MillstreamAgentError as exc:
        raise fail(exc) from exc
    if as_json:
        payload = [
            {"tag": s.tag, "value": s.value, "quality": s.quality, "raw": raw.hex(" ").upper(),
             "address": str(p.address), "type": p.type}
            for p, raw, s in rows
        ]  # fmt: skip
        typer.echo(json.dumps(payload, ensure_ascii=False))
        return
    width = max((len(p.name) for p, _, _ in rows), default=3)
    typer.echo(f"{'tag':<{width}}  {'address':<14}  {'type':<7}  {'value':<20}  bytes")
    for point, raw, sample in rows:
        typer.echo(
            f"{point.name:<{width}}  {point.address!s:<14}  {point.type:<7}  "
            f"{sample.value!r:<20}  {raw.hex(' ').upper()}"
        )
