"""What the runtime reads from: anything with `batches()` (the drivers), or a synthetic source."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Protocol, Self

from edge_agent.drivers.base import Sample
from edge_agent.drivers.health import DeviceHealth

__all__ = ["Source", "SyntheticSource"]


class Source(Protocol):
    """A device the runtime drains: the Modbus and OPC-UA drivers satisfy this."""

    async def __aenter__(self) -> Self:
        """Connect (or start connecting in the background)."""
        ...

    async def __aexit__(self, *exc: object) -> None:
        """Close."""

    def batches(self) -> AsyncIterator[list[Sample]]:
        """Samples as they are read, one list per poll or publish response; after `close()`,
        what was read before it, then the end."""
        ...

    async def close(self) -> None:
        """Stop reading: a read in flight completes, and `batches()` hands out everything read
        and then ends — so a stopping agent loses none of it."""

    @property
    def offline_after_s(self) -> float:
        """How long polls must fail before the device counts as offline."""
        ...

    def report_to(self, health: DeviceHealth) -> None:
        """Report every poll and connection outcome to `health` from now on."""


class SyntheticSource:
    """Counts: `tags` series at `rate` readings/s in total, optionally logging each reading served.

    For benchmarks and end-to-end tests. The truth log (`device,tag,ts` per line) is written and
    flushed *before* a poll's samples are handed on, so it is a superset of what the agent saw.
    """

    def __init__(
        self,
        device: str,
        *,
        tags: int = 10,
        rate: float = 1000.0,
        tick: float = 0.01,
        truth: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.device = device
        self.tags = [f"t{i}" for i in range(tags)]
        self.rate = rate
        self.tick = tick
        self.truth_path = truth
        self._clock = clock
        self._last_ts = [0] * tags
        self._truth: IO[str] | None = None
        self._closed = False
        self.health = DeviceHealth(device)

    @property
    def offline_after_s(self) -> float:
        """A synthetic device never fails; the default threshold."""
        return 5.0

    def report_to(self, health: DeviceHealth) -> None:
        """Every tick counts as a good poll."""
        self.health = health

    async def close(self) -> None:
        """Stop producing: `batches()` ends at its next tick."""
        self._closed = True

    async def __aenter__(self) -> Self:
        self._closed = False
        if self.truth_path is not None:
            self._truth = self.truth_path.open("a", buffering=1 << 16)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._truth is not None:
            self._truth.close()
            self._truth = None

    async def batches(self) -> AsyncIterator[list[Sample]]:
        """One list per tick, `rate × elapsed` samples spread over the tags."""
        owed = 0.0
        last = time.monotonic()
        next_tag = 0
        while not self._closed:
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            # A consumer that made us wait (backpressure) does not get a burst of catch-up
            # samples: like a real device, what was not polled was not read.
            owed = min(owed + (now - last) * self.rate, self.rate * self.tick * 10)
            last = now
            count = int(owed)
            owed -= count
            now_ms = int(self._clock() * 1000)
            out: list[Sample] = []
            for _ in range(count):
                i = next_tag
                next_tag = (next_tag + 1) % len(self.tags)
                # Strictly increasing per tag: (machine, tag, ts) is a reading's identity.
                ts = max(now_ms, self._last_ts[i] + 1)
                self._last_ts[i] = ts
                out.append(Sample(self.tags[i], ts, float(ts % 1000), "good"))
            if self._truth is not None and out:
                self._truth.write("".join(f"{self.device},{s.tag},{s.ts}\n" for s in out))
                self._truth.flush()
            self.health.poll_ok()
            if out:
                yield out
