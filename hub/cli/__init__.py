"""`millstream-hub` command line: the operator's entry point.

Each command group lives in its own module under `hub/cli/` and exposes `register(app)`;
this module only assembles them.
"""

import typer

from hub import __version__
from hub.cli import agents, devices, kafka, migrate, serve, users

__all__ = ["app", "main"]

app = typer.Typer(
    name="millstream-hub",
    help="Millstream hub: store MQTT telemetry in PostgreSQL, bridge to Kafka, serve dashboards.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"millstream-hub {__version__}")
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
    """Millstream hub."""


# Command modules register themselves here, one line each (see module docstring).
serve.register(app)
migrate.register(app)
kafka.register(app)
users.register(app)
agents.register(app)
devices.register(app)


def main() -> None:
    """Run the CLI."""
    app()
