"""`edge-agent buffer stats | export | import | purge`: look into and manage the local buffer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.buffer.salvage import Salvage, read_chunks
from edge_agent.cli.common import load_or_exit
from edge_agent.cli.localstate import (
    agent_running,
    buffer_summary,
    now,
    open_buffer_readonly,
    read_status,
)
from edge_agent.runtime import buffer_path
from edge_agent.runtime.lock import AgentAlreadyRunning, hold_agent_lock

__all__ = ["buffer_app", "parse_since", "register"]

buffer_app = typer.Typer(
    name="buffer",
    help="""The local store-and-forward buffer: what it holds, export it, import a set-aside
buffer to publish it, empty it.

Examples:

\b
    $ edge-agent buffer stats agent.yaml
    $ edge-agent buffer export agent.yaml --since 2026-11-23T03:00 night.jsonl
    $ edge-agent buffer import agent.yaml /var/lib/millstream/buffer.db.corrupt-20261123T031200
    $ edge-agent buffer purge agent.yaml
""",
    no_args_is_help=True,
    rich_markup_mode=None,
)

ConfigArg = Annotated[Path, typer.Argument(help="Agent config file.")]


def parse_since(text: str) -> int:
    """`2026-11-23T03:00` (UTC unless an offset is given) or epoch ms → epoch ms."""
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter("write an ISO time like 2026-11-23T03:00 or epoch ms") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


@buffer_app.command("stats")
def stats(
    config: ConfigArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Readings, bytes, oldest age and drop counts per device."""
    loaded = load_or_exit(config)
    conn = open_buffer_readonly(loaded)
    if conn is None:
        typer.echo(f"no buffer yet at {buffer_path(loaded.config, loaded.path)}")
        return
    with conn:
        summary = buffer_summary(conn, now())
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    typer.echo(
        f"{buffer_path(loaded.config, loaded.path)}: {summary['readings']} readings, "
        f"{summary['bytes'] / 1e6:.1f} MB"
    )
    for name, d in sorted(summary["devices"].items()):
        age = "-" if d["oldest_age_s"] is None else f"{d['oldest_age_s']:.0f} s"
        typer.echo(
            f"  {name:20} {d['readings']:>10} readings  oldest {age:>8}  in flight {d['in_flight']}"
            f"  dropped {d.get('dropped', 0)}  downsampled {d.get('downsampled', 0)}"
        )


@buffer_app.command("export")
def export(
    config: ConfigArg,
    out: Annotated[Path, typer.Argument(help="Output file: one JSON reading per line.")],
    since: Annotated[
        str,
        typer.Option(help="Only readings at or after this time (ISO, UTC default, or epoch ms)."),
    ] = "0",
    source: Annotated[
        Path | None,
        typer.Option(
            "--file", help="Read this buffer file instead (e.g. a set-aside buffer.db.corrupt-…)."
        ),
    ] = None,
) -> None:
    """Write buffered readings to FILE as JSON lines: machine, tag, ts, v, q.

    Reads a damaged buffer too: every chunk that can be read is exported, the others are counted.
    """
    loaded = load_or_exit(config)
    since_ms = parse_since(since)
    path = source or buffer_path(loaded.config, loaded.path)
    if not path.exists():
        typer.echo(f"error: no buffer at {path}; nothing to export", err=True)
        raise typer.Exit(1)
    report = Salvage()
    count = 0
    with out.open("w") as f:
        for device, readings in read_chunks(path, report):
            for r in readings:
                if r.ts >= since_ms:
                    row = {"machine": device, "tag": r.tag, "ts": r.ts, "v": r.v, "q": r.q}
                    f.write(json.dumps(row) + "\n")
                    count += 1
    typer.echo(f"exported {count} readings from {report.chunks} chunks of {path} to {out}")
    _say_damage(report, path)


@buffer_app.command("purge")
def purge(
    config: ConfigArg,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every buffered reading (asks first; refuses while the agent runs)."""
    loaded = load_or_exit(config)
    if agent_running(read_status(loaded), loaded, now()):
        typer.echo(
            "error: the agent is running; stop it first (e.g. systemctl stop millstream-agent)",
            err=True,
        )
        raise typer.Exit(1)
    path = buffer_path(loaded.config, loaded.path)
    conn = open_buffer_readonly(loaded)
    if conn is None:
        typer.echo("no buffer; nothing to purge")
        return
    with conn:
        summary = buffer_summary(conn, now())
    conn.close()
    if not yes:
        typer.confirm(
            f"Delete {summary['readings']} buffered readings from {path}? They were never "
            "confirmed by the hub and will be lost",
            abort=True,
        )
    from edge_agent.buffer import BufferDB  # noqa: PLC0415 -- opened for writing only here

    # Held while purging: an agent starting meanwhile is refused (systemd starts it again
    # later) instead of publishing from a half-deleted buffer.
    try:
        with hold_agent_lock(path):
            db = BufferDB(path, now_ms=int(now() * 1000))
            deleted = db.purge()
            db.close()
    except AgentAlreadyRunning as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"purged {deleted} readings")


def _say_damage(report: Salvage, path: Path) -> None:
    if report.damaged:
        typer.echo(
            f"warning: {report.damaged} damaged chunks of {path} could not be read and were "
            "skipped; keep the file for recovery",
            err=True,
        )
    if report.error:
        typer.echo(f"warning: {report.error}; what came before it was read", err=True)


@buffer_app.command("import")
def import_buffer(
    config: ConfigArg,
    source: Annotated[
        Path,
        typer.Argument(
            help="A buffer file to publish again, e.g. the buffer.db.corrupt-<time> the agent "
            "set aside."
        ),
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Put the readings of another buffer file into this agent's buffer, to be published.

    For a buffer the agent set aside as corrupt, or one carried over from another line PC:
    every chunk that can be read is added (damaged ones are counted and skipped), and the agent
    publishes them at its next start. The hub stores each reading once, so importing what was
    already delivered is harmless. Refuses while the agent runs.
    """
    loaded = load_or_exit(config)
    path = buffer_path(loaded.config, loaded.path)
    if agent_running(read_status(loaded), loaded, now()):
        typer.echo(
            "error: the agent is running; stop it first (e.g. systemctl stop millstream-agent)",
            err=True,
        )
        raise typer.Exit(1)
    if not source.exists():
        typer.echo(f"error: no file {source}; name a buffer file (ls {path.parent})", err=True)
        raise typer.Exit(1)
    if source.resolve() == path.resolve():
        typer.echo("error: that is this agent's own buffer; name another file", err=True)
        raise typer.Exit(1)
    report = Salvage()
    total = sum(len(readings) for _, readings in read_chunks(source, report))
    if not total:
        typer.echo(f"error: no readable readings in {source}", err=True)
        _say_damage(report, source)
        raise typer.Exit(1)
    if not yes:
        typer.confirm(f"Add {total} readings from {source} to {path}, to be published?", abort=True)
    from edge_agent.buffer import BufferDB  # noqa: PLC0415 -- opened for writing only here

    added = 0
    report = Salvage()
    try:
        with hold_agent_lock(path):
            db = BufferDB(path, now_ms=int(now() * 1000))
            try:
                for n, (device, readings) in enumerate(read_chunks(source, report), start=1):
                    if db.append(device, readings) is not None:
                        added += len(readings)
                    if n % 1000 == 0:
                        db.commit()
            finally:
                db.close()
    except AgentAlreadyRunning as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"imported {added} readings from {report.chunks} chunks of {source}; the agent publishes "
        "them at its next start (edge-agent status shows the backlog)"
    )
    _say_damage(report, source)


def register(app: typer.Typer) -> None:
    """Add the `buffer` command group to the CLI."""
    app.add_typer(buffer_app)
