"""What every `edge-agent` command shares: load the config or say what is wrong, and turn an
error into the words a technician reads, with the next step, and exit code 1."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from edge_agent.config import LoadedConfig, load_agent_config
from edge_agent.errors import ConfigError, DeviceUnavailable, MillstreamAgentError
from edge_agent.runtime.registry import build_driver
from edge_agent.runtime.sources import Source

__all__ = ["driver_or_exit", "fail", "load_or_exit"]


def fail(exc: MillstreamAgentError) -> typer.Exit:
    """Print an error the way a technician reads it and return the exit to raise."""
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
    else:
        typer.echo(f"error: {exc}", err=True)
        if isinstance(exc, DeviceUnavailable) and exc.hint:
            typer.echo(f"next: {exc.hint}", err=True)
    return typer.Exit(1)


def load_or_exit(config: Path) -> LoadedConfig:
    """Load and validate the config, or print its problems and exit 1."""
    try:
        return load_agent_config(config, os.environ)
    except ConfigError as exc:
        raise fail(exc) from exc


def driver_or_exit(config: Path, device: str) -> Source:
    """The driver of one configured device, or its config's problems printed and exit 1."""
    loaded = load_or_exit(config)
    try:
        return build_driver(loaded, device)
    except MillstreamAgentError as exc:
        raise fail(exc) from exc
