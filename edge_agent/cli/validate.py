"""`edge-agent validate CONFIG`: check a config and every profile it uses, list every problem."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.config import LoadedConfig, load_agent_config
from edge_agent.errors import ConfigError, ConfigProblem

__all__ = ["format_problem", "register", "summary", "validate"]

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


def register(app: typer.Typer) -> None:
    """Add the `validate` command to `app`."""
    app.command("validate", help=_HELP)(validate)
