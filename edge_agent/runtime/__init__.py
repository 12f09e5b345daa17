"""The agent runtime: one TaskGroup wiring sources → batcher → buffer → publisher, plus status.

Pure parts: `ingest` (samples → readings), `production`, `status`, `meta` (units from profiles).
I/O: `agent`, `main`, `contract` (wire), `sources` (the Source Protocol and a synthetic counter
source).
"""

from edge_agent.runtime.agent import Agent
from edge_agent.runtime.contract import WireContract
from edge_agent.runtime.ingest import to_readings
from edge_agent.runtime.logsetup import setup_logging
from edge_agent.runtime.main import buffer_path, run_agent, state_dir
from edge_agent.runtime.meta import meta_messages, profile_meta
from edge_agent.runtime.production import Production
from edge_agent.runtime.sources import Source, SyntheticSource
from edge_agent.runtime.status import build_status, status_state

__all__ = [
    "Agent",
    "Production",
    "Source",
    "SyntheticSource",
    "WireContract",
    "buffer_path",
    "build_status",
    "meta_messages",
    "profile_meta",
    "run_agent",
    "setup_logging",
    "state_dir",
    "status_state",
    "to_readings",
]
