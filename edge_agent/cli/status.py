"""`edge-agent status CONFIG`: how the agent on this PC is doing, even when it runs as a service."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

import wire
from edge_agent.cli.common import load_or_exit
from edge_agent.cli.localstate import (
    agent_running,
    buffer_summary,
    now,
    open_buffer_readonly,
    read_status,
)

__all__ = ["format_status", "register", "status"]

_HELP = """Show the agent's state from this PC's files: broker connection, devices, buffer depth
and age, backlog and drain ETA, dropped readings. Works while the agent runs (as a service
or not) and after it stopped (then it shows the last state it recorded, marked as such,
with its age).

Examples:

\b
    $ edge-agent status /etc/millstream/agent.yaml
    $ edge-agent status agent.yaml --json | jq .buffer
"""


def _age(ms: int | None) -> str:
    if ms is None:
        return "-"
    s = ms / 1000
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


# Offline in capitals: the line a technician scanning the list must not miss.
_DEVICE_WORDS = {"online": "online", "offline": "OFFLINE", "connecting": "connecting"}


def format_status(doc: wire.AgentReport, running: bool, now_s: float) -> str:
    """The status document as a technician reads it.

    A stopped agent's file is what it saw last: every line below the header is then worded as the
    past ("was online"), with the record's age, so nobody reads it as the machines' state now.
    """
    header: str = doc.state
    if not running:
        recorded = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(doc.ts / 1000))
        age = _age(max(0, round(now_s * 1000 - doc.ts)))
        header = f"not running; last known state, recorded {age} ago ({recorded}):"
    was = "" if running else "was "
    lines = [f"agent {doc.agent} {doc.version}: {header}"]
    if doc.why:
        lines.append(f"  why: {doc.why}")
    lines.append(f"  broker {doc.broker}: {was}{'connected' if doc.connected else 'not connected'}")
    buf, backlog, pub = doc.buffer, doc.backlog, doc.publish
    lines.append(
        f"  buffer: {buf.readings} readings, {buf.nbytes / 1e6:.1f} MB, oldest "
        f"{_age(buf.oldest_age_ms)}, {buf.in_flight} awaiting receipt, "
        f"{buf.dropped} dropped, {buf.downsampled} downsampled"
    )
    eta = f", ETA {backlog.eta_s:.0f} s" if backlog.eta_s is not None else ""
    lines.append(
        f"  backlog: {backlog.readings} unsent (oldest {_age(backlog.oldest_unsent_age_ms)}), "
        f"draining {backlog.drain_rate:.0f}/s{eta}; "
        f"publishing {pub.rate:.0f} readings/s"
    )
    lines.append("  devices:")
    for name, d in doc.devices.items():
        word = _DEVICE_WORDS.get(d.state, d.state)
        state = f"{word:10}" if running else f"was {word:10}"
        lines.append(
            f"    {name:20} {state} "
            f"{d.readings_per_min:>9.0f}/min  errors {d.errors}  dropped {d.dropped}"
            + (f"  why: {d.why}" if d.why else "")
            + (
                f"  polling at {100 * d.schedule:.0f} % of schedule"
                if d.schedule is not None and d.schedule < 0.9
                else ""
            )
            + (f"  last error: {d.last_error}" if d.last_error and not d.why else "")
        )
    return "\n".join(lines)


def status(
    config: Annotated[Path, typer.Argument(help="Agent config file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Show the local agent's state."""
    loaded = load_or_exit(config)
    doc = read_status(loaded)
    running = agent_running(doc, loaded, now())
    conn = open_buffer_readonly(loaded)
    buffer = buffer_summary(conn, now()) if conn is not None else None
    if conn is not None:
        conn.close()
    if as_json:
        # status_age_s: how old the record is; of a stopped agent it is the last known state.
        age = None if doc is None else round(max(0.0, now() - doc.ts / 1000), 1)
        shown = None if doc is None else doc.to_json()
        out = {"running": running, "status_age_s": age, "status": shown, "buffer_file": buffer}
        typer.echo(json.dumps(out, indent=1))
        return
    if doc is None:
        typer.echo(f"agent {loaded.config.agent.id}: has not run with this config yet")
    else:
        typer.echo(format_status(doc, running, now()))
    if buffer is not None and not running:
        typer.echo(
            f"  buffer file now: {buffer['readings']} readings, {buffer['bytes'] / 1e6:.1f} MB"
        )


def register(app: typer.Typer) -> None:
    """Add `status` to the CLI."""
    app.command("status", help=_HELP)(status)
