"""One device's health: online while its polls succeed, offline once they have failed for long.

The runtime owns one per device and hands it to the device's driver (`Driver.report_to`); the
driver reports every poll or connection outcome, whatever its protocol. Agent status, the
machine's retained wire status, Prometheus metrics and so the hub's fleet view all read this one
object, so they cannot disagree.

A single failed poll is not an outage (a PLC busy with a program download misses one answer):
a device is offline once it has failed without a success in between for `offline_after_s`, which
`offline_after` derives from its fastest poll and its timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DeviceHealth", "DeviceState", "offline_after"]

_log = logging.getLogger("edge_agent.device")

# connecting: no poll has answered yet and none has failed for long.
DeviceState = Literal["connecting", "online", "offline"]


def offline_after(fastest_poll_s: float, timeout_s: float) -> float:
    """How long polls must fail before a device counts as offline: three missed polls, but never
    less than one timeout plus 2 s (a slow answer is not an outage)."""
    return max(3 * fastest_poll_s, timeout_s + 2.0)


@dataclass
class DeviceHealth:
    """Poll outcomes of one device and the state they add up to (`state(now)`)."""

    device: str
    offline_after_s: float = 5.0
    clock: Callable[[], float] = field(default=time.time, repr=False)
    errors: int = 0  # failed polls and connection attempts since the agent started
    last_error: str = ""
    last_ok: float | None = None  # wall-clock time of the newest successful poll
    failing_since: float | None = None  # first failure since the last success
    # Share of the scheduled polls the device was polled (None until measured): below 1 when
    # more is configured than the agent or the device can keep up with (docs/devices.md).
    schedule: float | None = None
    _streak: int = 0

    def poll_ok(self) -> None:
        """A poll (or a connection, for protocols that push) succeeded."""
        if self.failing_since is not None:
            _log.info("device %s answering again after %d failed polls", self.device, self._streak)
        self.failing_since = None
        self._streak = 0
        self.last_ok = self.clock()

    def poll_failed(self, reason: str) -> None:
        """A poll or connection attempt failed; `reason` in words, e.g. "no answer from …"."""
        self.errors += 1
        self._streak += 1
        self.last_error = reason
        if self.failing_since is None:
            self.failing_since = self.clock()
            # The first of a streak is a warning, the rest debug: an unplugged PLC must not
            # flood the log, and the status says how long it has been down.
            _log.warning(
                "device %s unavailable: %s (retrying; further failures are counted, not logged)",
                self.device,
                reason,
            )
        else:
            _log.debug("device %s still unavailable: %s", self.device, reason)

    def state(self, now: float | None = None) -> DeviceState:
        """online, offline or (before any answer) connecting, as of `now`."""
        now = self.clock() if now is None else now
        if self.failing_since is not None and now - self.failing_since >= self.offline_after_s:
            return "offline"
        return "connecting" if self.last_ok is None else "online"

    def why(self, now: float | None = None) -> str | None:
        """Why the device is offline, in words a technician acts on; None while it is not."""
        if self.state(now) != "offline" or self.failing_since is None:
            return None
        since = time.strftime("%H:%M:%S", time.localtime(self.failing_since))
        return f"{self.last_error} since {since}"
