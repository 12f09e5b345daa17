"""What `status` and `buffer` read while the agent may be running: its status file and buffer."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import wire
from edge_agent.config import LoadedConfig, buffer_path, state_dir
from edge_agent.runtime.lock import lock_holder

__all__ = ["agent_running", "buffer_summary", "now", "open_buffer_readonly", "read_status"]


def read_status(loaded: LoadedConfig) -> wire.AgentReport | None:
    """The last status report the agent wrote; None if it never ran here or it is unreadable."""
    path = state_dir(loaded.config, loaded.path) / "agent-status.json"
    try:
        return wire.AgentReport.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None


def agent_running(status: wire.AgentReport | None, loaded: LoadedConfig, now: float) -> bool:
    """True while an agent holds this config's buffer lock (exact, even right after a stop).

    Without read access to the lock file, falls back to the status file's age (the agent
    rewrites it every status interval).
    """
    try:
        return lock_holder(buffer_path(loaded.config, loaded.path)) is not None
    except OSError:
        pass
    if status is None:
        return False
    interval = loaded.config.mqtt.status_interval.total_seconds()
    return bool(now - status.ts / 1000 < 3 * interval + 5)


def open_buffer_readonly(loaded: LoadedConfig) -> sqlite3.Connection | None:
    """A read-only connection to the buffer (safe next to a running agent: WAL mode)."""
    path = buffer_path(loaded.config, loaded.path)
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    conn.execute("PRAGMA query_only=1")
    return conn


def buffer_summary(conn: sqlite3.Connection, now: float) -> dict[str, Any]:
    """Depth, bytes and age per device, and drop counts, straight from the database."""
    devices: dict[str, dict[str, Any]] = {}
    for device, n, nbytes, oldest, claimed in conn.execute(
        "SELECT device, sum(n), sum(nbytes), min(first_ts), "
        "sum(CASE WHEN seq IS NULL THEN 0 ELSE n END) FROM chunk GROUP BY device"
    ):
        devices[device] = {
            "readings": n,
            "bytes": nbytes,
            "oldest_age_s": round(now - oldest / 1000, 1),
            "in_flight": claimed,
        }
    for device, dropped, downsampled in conn.execute(
        "SELECT device, dropped, downsampled FROM drops"
    ):
        d = devices.setdefault(
            device, {"readings": 0, "bytes": 0, "oldest_age_s": None, "in_flight": 0}
        )
        d["dropped"] = dropped
        d["downsampled"] = downsampled
    return {
        "readings": sum(d["readings"] for d in devices.values()),
        "bytes": sum(d["bytes"] for d in devices.values()),
        "devices": devices,
    }


def now() -> float:
    """Wall clock (one place, so the pure helpers above take it as a parameter)."""
    return time.time()
