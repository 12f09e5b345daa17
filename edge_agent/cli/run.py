"""`edge-agent run CONFIG`: read every device, buffer every reading, publish until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.cli.common import fail, load_or_exit
from edge_agent.commands import Reconfigurer
from edge_agent.config.remote import select_config
from edge_agent.errors import MillstreamAgentError
from edge_agent.runtime import profile_meta, run_agent, setup_logging
from edge_agent.runtime.events import tag_events
from edge_agent.runtime.registry import build_sources

__all__ = ["register", "run"]

log = logging.getLogger(__name__)

_HELP = """Run the agent: poll every device in CONFIG, commit each reading to the local buffer,
publish batches over MQTT, delete them when the hub confirms (receipts).

Stops cleanly on SIGTERM or Ctrl-C within 5 s: pending readings are committed, the broker is
told `offline`, and the next start publishes whatever is still buffered. Logs are JSON lines
on stderr. Installed as a service, use `edge-agent status CONFIG` to see how it is doing.

Examples:

\b
    $ edge-agent run /etc/millstream/agent.yaml
    $ edge-agent run agent.yaml --metrics-port 9108 --log-level debug
"""


def run(
    config: Annotated[
        Path, typer.Argument(help="Agent config file, e.g. /etc/millstream/agent.yaml.")
    ],
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics on 127.0.0.1:PORT (off by default)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the agent until SIGTERM or Ctrl-C."""
    setup_logging(log_level)
    local = load_or_exit(config)
    try:
        on_status = None
        if metrics_port is not None:
            from edge_agent.runtime.metrics import AgentMetrics  # noqa: PLC0415 -- optional

            metrics = AgentMetrics()
            metrics.serve(metrics_port)
            on_status = metrics.update
            log.info("metrics on http://127.0.0.1:%d/metrics", metrics_port)
        # A configuration from the hub, once active or rolled back, restarts the agent in
        # this loop: everything is built again from the configuration active now.
        while True:
            loaded, active = select_config(local, Path(local.config.state_dir))
            running = None if active is None or loaded is local else active.version
            if running is not None:
                log.info("running config version %d from the hub (local file %s)", running,
                         local.path)  # fmt: skip
            reconfigure = Reconfigurer(local, active, running)
            sources = build_sources(loaded)
            reload = asyncio.run(
                run_agent(
                    loaded.config,
                    local.path,
                    sources,
                    on_status=on_status,
                    meta=profile_meta(loaded),
                    events=tag_events(loaded),
                    reconfigure=reconfigure,
                )
            )
            if not reload:
                return
            local = load_or_exit(config)
    except MillstreamAgentError as exc:
        raise fail(exc) from exc


def register(app: typer.Typer) -> None:
    """Add `run` to the CLI."""
    app.command("run", help=_HELP)(run)
