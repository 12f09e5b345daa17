"""`millstream demo`: the whole system on one machine, one command (docs/demo.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from hub import __version__

__all__ = ["app", "main"]

app = typer.Typer(
    name="millstream",
    help="Millstream: machine data from the shop floor to the dashboard.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"millstream {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_show_version,
        is_eager=True,
    ),
) -> None:
    """Millstream."""


@app.command("demo")
def demo(
    data_dir: Annotated[
        Path,
        typer.Option("--data-dir", help="Folder holding all demo state; reused by the next run."),
    ] = Path("millstream-demo"),
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Dashboard port on 127.0.0.1.")
    ] = 8000,
    machines: Annotated[
        int,
        typer.Option(
            "--machines", min=1, max=100, help="Simulated machines (five types, round-robin)."
        ),
    ] = 5,
) -> None:
    """Run a simulated plant, an edge agent, an MQTT broker and the hub with its dashboard."""
    typer.echo(f"millstream demo: starting (state in {data_dir.resolve()})")
    try:
        # Imported after the first line: loading the simulator, hub and drivers takes a moment.
        from hub.demo.supervisor import DemoError, DemoOptions, run_demo  # noqa: PLC0415
    except KeyboardInterrupt:
        # Ctrl-C before anything started (run_demo handles it from then on).
        raise typer.Exit(130) from None

    options = DemoOptions(data_dir=data_dir, port=port, machines=machines)
    try:
        asyncio.run(run_demo(options, typer.echo))
    except DemoError as exc:
        typer.echo(f"millstream demo: {exc}", err=True)
        raise typer.Exit(1) from exc


def main() -> None:
    """Run the CLI."""
    app()
