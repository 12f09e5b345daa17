"""`edge-agent` command line: the technician's entry point."""

import typer

from edge_agent import __version__

app = typer.Typer(
    name="edge-agent",
    help="Millstream edge agent: read machines over Modbus and OPC-UA, buffer, publish over MQTT.",
    no_args_is_help=True,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"edge-agent {__version__}")
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
    """Millstream edge agent."""


def main() -> None:
    """Run the CLI."""
    app()
