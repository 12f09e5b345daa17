"""A machine's state as an engineer should read it: online, offline, stale, faulted (pure).

A machine's own status topic says online/offline/faulted when the device publishes one; a machine
polled by an edge agent is as reachable as that agent, so the agent's state comes first (its
`offline` is its clean shutdown or its MQTT last will). Whatever the statuses say, a machine whose
newest value is older than it may be is stale: older than its declared quiet time (its tags'
shortest poll interval or heartbeat, from its meta message) plus `STALE_GRACE_MS`, or than
`STALE_MS` for a machine that declared none (docs/devices.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["STALE_GRACE_MS", "STALE_MS", "Judged", "MachineFacts", "judge", "stale_after_ms"]

# No value for this long from a machine that declared nothing about its pace: stale. Agents
# poll every second or so and publish within a second; a minute is many missed polls, not jitter.
STALE_MS = 60_000
# Beyond a machine's declared quiet time: batching, a status period and clock skew between an
# agent and the hub, so a machine on its heartbeat is never called stale.
STALE_GRACE_MS = 30_000

State = Literal["online", "offline", "stale", "faulted", "unknown"]


@dataclass(frozen=True, slots=True)
class MachineFacts:
    """What the hub knows about one machine, from storage."""

    status: str | None  # its own status topic's state, None if it never published one
    detail: str | None  # that status's detail
    last_ms: int | None  # newest reading (else last status), epoch ms
    agent: str | None = None  # the agent that polls it (from agent status `devices`)
    agent_state: str | None = None  # that agent's last reported state
    poll_errors: int = 0  # that agent's poll errors for this machine since it started
    quiet_ms: int | None = None  # longest it may stay silent when healthy (its meta), if declared


@dataclass(frozen=True, slots=True)
class Judged:
    """A state and why, in words."""

    state: State
    reason: str


# One return per rule reads as the ordered list of rules it is.
def judge(f: MachineFacts, now_ms: int) -> Judged:  # noqa: PLR0911
    """The machine's state and the reason for it, by the rules in the module docstring."""
    if f.agent is not None and f.agent_state == "offline":
        return Judged("offline", f"agent {f.agent} is offline")
    if f.agent is not None and f.agent_state == "faulted":
        return Judged("faulted", f"agent {f.agent} is faulted")
    if f.status == "offline":
        return Judged("offline", f.detail or "machine reported offline")
    if f.status == "faulted":
        return Judged("faulted", f.detail or "machine reported a fault")
    if f.last_ms is None:
        return Judged("unknown", "no data received yet")
    if now_ms - f.last_ms > stale_after_ms(f.quiet_ms):
        return Judged("stale", f"no reading for {round((now_ms - f.last_ms) / 1000)} s")
    if f.poll_errors:
        return Judged("online", f"{f.poll_errors} poll errors since agent start")
    return Judged("online", "data flowing")


def stale_after_ms(quiet_ms: int | None) -> int:
    """How long without a reading makes a machine stale, from its declared quiet time."""
    return STALE_MS if quiet_ms is None else quiet_ms + STALE_GRACE_MS
