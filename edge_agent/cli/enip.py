"""`edge-agent probe` and `browse` for an EtherNet/IP device: every tag once, with the
controller's name; the controller's tag list, and a profile skeleton of it."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import typer
import yaml

from edge_agent.cli.common import fail
from edge_agent.drivers.base import Sample
from edge_agent.drivers.enip.driver import EnipDriver
from edge_agent.drivers.enip.tag_list import ListedTag, list_tags, profile_skeleton
from edge_agent.errors import MillstreamAgentError

__all__ = ["browse_enip", "probe_enip"]


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


def _show(tag: ListedTag, indent: int, width: int) -> None:
    label = ("  " * indent) + (tag.name if indent == 0 else f".{tag.name}")
    typer.echo(f"{label:<{width}}  {tag.shown_type}")
    for member in tag.members or ():
        _show(member, indent + 1, width)


def browse_enip(driver: EnipDriver, profile_out: Path | None, max_elements: int) -> None:
    """`edge-agent browse` for an EtherNet/IP device: the controller's tags with their types
    (UDT members indented), and with `profile_out` a profile skeleton of them."""
    logging.getLogger("pylogix").setLevel(logging.CRITICAL)
    try:
        listing = list_tags(driver.endpoint, driver.device, lambda line: typer.echo(line, err=True))
    except MillstreamAgentError as exc:
        raise fail(exc) from exc
    width = max((len(t.name) for t in listing.tags), default=3)
    for tag in listing.tags:
        _show(tag, 0, min(width, 48))
    if profile_out is None:
        return
    skeleton, skipped = profile_skeleton(profile_out.stem, driver.endpoint, listing, max_elements)
    for why in skipped:
        typer.echo(f"left out: {why}")
    if not skeleton["tags"]:
        typer.echo(f"error: no tag of {driver.device} has a profile type; nothing written",
                   err=True)  # fmt: skip
        typer.echo("next: write the profile from the PLC project (docs/enip.md)", err=True)
        raise typer.Exit(1)
    header = (
        f"# Profile skeleton: the tag list of {driver.device} ({driver.endpoint}).\n"
        "# Fill in vendor and model, name the tags, add units, scaling and poll_ms; delete what "
        "you do not need.\n" + "".join(f"# left out: {why}\n" for why in skipped)
    )
    # One line per tag, as the shipped profiles are written: easier to edit, sort and delete.
    head = {key: value for key, value in skeleton.items() if key != "tags"}
    body = yaml.safe_dump(head, sort_keys=False, allow_unicode=True, width=1000) + "tags:\n"
    for tag in skeleton["tags"]:
        line = yaml.safe_dump(tag, sort_keys=False, default_flow_style=True, width=1000)
        body += f"  - {line.strip()}\n"
    profile_out.write_text(header + body)
    typer.echo(f"wrote {len(skeleton['tags'])} tags to {profile_out}")
    typer.echo(
        f"next: keep {profile_out.name} beside the config (or in its device_profiles/), set "
        f"profile: {profile_out.stem} on the device, then edge-agent validate and probe"
    )
