"""`edge-agent validate CONFIG`: check a config and every profile it uses, list every problem."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.config import LoadedConfig, OpcUaProfile, load_agent_config
from edge_agent.errors import ConfigError, ConfigProblem

__all__ = ["format_problem", "load_warning", "offered_rate", "register", "summary", "validate"]

_HELP = """Check CONFIG and every device profile it names; print every problem at once.

Each problem names the file (and line), the key path, what is wrong and what to write instead.
Exit code 0 when everything is valid (one summary line), 1 when there are problems.
MILLSTREAM_… environment overrides are applied first, exactly as `edge-agent run` would.

Example:

\b
    $ edge-agent validate examples/agent.yaml
    ok: agent line3-pc (plant-a/line-3), 2 devices, 50 tags, profiles eastron-sdm630, eastron-sdm120
"""


def format_problem(problem: ConfigProblem) -> str:
    """Return one problem as the lines a technician reads: where, what, then the hint."""
    place = f"{problem.file}:{problem.line}" if problem.line else problem.file
    head = (
        f"{place}: {problem.path}: {problem.message}"
        if problem.path
        else f"{place}: {problem.message}"
    )
    return f"{head}\n    hint: {problem.hint}" if problem.hint else head


def summary(loaded: LoadedConfig) -> str:
    """Return the one-line summary of a valid config."""
    agent = loaded.config.agent
    devices = len(loaded.devices)
    profiles = ", ".join(loaded.profiles) or "none"
    return (
        f"ok: agent {agent.id} ({agent.site}/{agent.line}), {devices} device"
        f"{'s' if devices != 1 else ''}, {loaded.tag_count} tags, profiles {profiles}"
    )


# What one core of the agent sustains end to end (poll → buffer → MQTT with receipts), rounded
# down from docs/agent.md "Modbus end to end": 239,300 readings/s delivered from 300,000 offered
# (libmodbus, 1,000 uint16 registers per device every 100 ms). A config asking for more will be
# polled below its schedule; scaled registers, deadbands and slower PCs cost more per reading.
SUSTAINED_READINGS_PER_S = 200_000


def offered_rate(loaded: LoadedConfig) -> float:
    """Readings per second the config asks for at most: every tag at its poll interval."""
    rate = 0.0
    for d in loaded.devices:
        profile = d.profile
        if isinstance(profile, OpcUaProfile):
            for t in profile.tags:
                ms = profile.defaults.sampling_ms if t.sampling_ms is None else t.sampling_ms
                rate += 1000 / ms if ms > 0 else 0.0
            continue
        for tag in profile.tags:
            rate += 1000 / (tag.poll_ms or profile.defaults.poll_ms)
    return rate


def load_warning(loaded: LoadedConfig) -> str | None:
    """A warning when the config asks for more than the agent can poll, else None."""
    rate = offered_rate(loaded)
    if rate <= SUSTAINED_READINGS_PER_S:
        return None
    return (
        f"warning: this config asks for up to {rate:,.0f} readings/s; one core of the agent "
        f"sustains about {SUSTAINED_READINGS_PER_S:,} (docs/agent.md, Figures), so devices will "
        "be polled below their schedule: poll less often (poll_ms) or read fewer tags"
    )


def validate(
    config: Annotated[
        Path, typer.Argument(help="Agent config file, e.g. /etc/millstream/agent.yaml.")
    ],
) -> None:
    """Check CONFIG and every device profile it names; print every problem at once."""
    try:
        loaded = load_agent_config(config, os.environ)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(format_problem(problem))
        count = len(exc.problems)
        typer.echo(f"{count} problem{'s' if count != 1 else ''} found in {config}")
        raise typer.Exit(1) from exc
    typer.echo(summary(loaded))
    warning = load_warning(loaded)
    if warning is not None:
        typer.echo(warning)


def register(app: typer.Typer) -> None:
    """Add the `validate` command to `app`."""
    app.command("validate", help=_HELP)(validate)
