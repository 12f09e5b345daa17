"""Run a real agent (runtime, buffer, publisher) over synthetic sources: the subprocess in tests.

usage: python agent_proc.py CONFIG.json TRUTH_FILE RATE_PER_DEVICE
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.runtime import SyntheticSource, run_agent


def main() -> None:
    config_file = Path(sys.argv[1])
    truth = Path(sys.argv[2])
    rate = float(sys.argv[3])
    config = AgentConfig.model_validate(json.loads(config_file.read_text()))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sources = {
        d.machine: SyntheticSource(d.machine, tags=5, rate=rate, truth=truth)
        for d in config.devices
    }
    asyncio.run(run_agent(config, config_file, sources))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
