"""`edge-agent probe` for an EtherNet/IP device: every tag once, with the controller's name."""

from __future__ import annotations

import asyncio
import json
import logging

import typer

from edge_agent.cli.common import fail
from edge_agent.drivers.base import Sample
from edge_agent.drivers.enip.driver import EnipDriver
from edge_agent.errors import MillstreamAgentError

__all__ = ["probe_enip"]


async def _read_once(driver: EnipDriver) -> list[Sample]:
    async with driver:
        return await driver.read()


def probe_enip(driver: EnipDriver, *, as_json: bool) -> None:
    """Read every tag once; a table, or `--json` in the shape the other protocols use (`raw`:
    the controller's tag name)."""
    logging.getLogger("pylogix").setLevel(logging.CRITICAL)
    try:
        samples = asyncio.run(_read_once(driver))
    except MillstreamAgentError as exc:
        raise fail(exc) from exc
    rows = list(zip(driver.points, samples, strict=True))
    if as_json:
        payload = [
            {"tag": s.tag, "value": s.value, "quality": s.quality, "raw": p.tag} for p, s in rows
        ]
        typer.echo(json.dumps(payload, ensure_ascii=False))
    else:
        width = max((len(p.name) for p, _ in rows), default=3)
        typer.echo(f"{'tag':<{width}}  {'value':<20}  {'quality':<7}  controller tag")
        for point, sample in rows:
            typer.echo(
                f"{point.name:<{width}}  {sample.value!r:<20}  {sample.quality:<7}  {point.tag}"
            )
    if rows and all(s.quality != "good" for _, s in rows):
        raise typer.Exit(1)
