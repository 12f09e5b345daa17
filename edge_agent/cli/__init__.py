"""`edge-agent` command line: the technician's entry point.

Each command group lives in its own module under `edge_agent/cli/` and exposes
`register(app)`; this module only assembles them, so adding a command is adding a module.
"""

import typer

from edge_agent import __version__
from edge_agent.cli import (
    browse,
    buffer,
    init,
    opcua,
    probe,
    run,
    service,
    simulate,
    status,
    validate,
    write,
)
from edge_agent.cli.access import ACCESS_ERRNOS, access_message

__all__ = ["app", "main"]

app = typer.Typer(
    name="edge-agent",
    help=(
        "Millstream edge agent: read machines over Modbus and OPC-UA, buffer every reading "
        "locally, publish batches over MQTT.\n\n"
        "Commissioning a line PC: init → validate → probe (→ write) → run."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
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


# Command modules register themselves here, one line each (see module docstring).
validate.register(app)
simulate.register(app)
opcua.register(app)
browse.register(app)
probe.register(app)
write.register(app)
init.register(app)
run.register(app)
status.register(app)
buffer.register(app)
service.register(app)


def main() -> None:
    """Run the CLI; a path the account may not write ends in one line, not a traceback."""
    try:
        app()
    except OSError as exc:
        if exc.errno not in ACCESS_ERRNOS:
            raise
        typer.echo(access_message(exc), err=True)
        raise SystemExit(1) from None
