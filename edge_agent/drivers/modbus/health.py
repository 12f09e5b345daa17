"""Counting failures without a log storm: warn once per streak, then count quietly."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["DeviceHealth"]


@dataclass(slots=True)
class DeviceHealth:
    """Per-device counters (exported as metrics) and the state of the current failure streak.

    Counter names: polls, requests, samples, bad_points, rejected, errors, reconnects.
    """

    device: str
    logger: logging.Logger
    counters: Counter[str] = field(default_factory=Counter)
    failing: bool = False
    last_error: str = ""

    def count(self, name: str, n: int = 1) -> None:
        """Add `n` to a counter."""
        self.counters[name] += n

    def failed(self, error: BaseException) -> None:
        """A poll or connect failed: the first of a streak is a warning, the rest are debug."""
        self.counters["errors"] += 1
        self.last_error = str(error)
        if not self.failing:
            self.failing = True
            self.logger.warning(
                "device %s unavailable: %s (retrying with backoff; further failures are "
                "counted, not logged)",
                self.device,
                error,
            )
        else:
            self.logger.debug("device %s still unavailable: %s", self.device, error)

    def recovered(self) -> None:
        """A poll succeeded: end the streak, saying so once."""
        if self.failing:
            self.failing = False
            self.logger.info(
                "device %s answering again after %d errors", self.device, self.counters["errors"]
            )
