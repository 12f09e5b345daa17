"""Run a real agent (runtime, buffer, publisher) over synthetic sources: the subprocess in tests.

usage: python agent_proc.py CONFIG.json TRUTH_FILE RATE_PER_DEVICE
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import logging
import signal
import sys
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.runtime import SyntheticSource, run_agent


def main() -> None:
    config_file = Path(sys.argv[1])
    truth = Path(sys.argv[2])
    rate = float(sys.argv[3])
    config = AgentConfig.model_validate(json.loads(config_file.read_text()))
    faulthandler.register(signal.SIGUSR1)  # tests dump our stacks when we hang
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sources = {
        d.machine: SyntheticSource(d.machine, tags=5, rate=rate, truth=truth)
        for d in config.devices
    }

    async def serve() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, dump_tasks)
        await run_agent(config, config_file, sources)  # type: ignore[arg-type]

    asyncio.run(serve())


def dump_tasks() -> None:
    for task in asyncio.all_tasks():
        print(f"--- task {task.get_name()}", file=sys.stderr)
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


if __name__ == "__main__":
    main()
