"""Ground truth: every value the simulator served, as JSON lines, written off the event loop.

One line per served value change (and one per tag on the first tick), so the value served at
time T is the last line for that machine and tag with `ts <= T`:

    {"machine": "press-01", "tag": "oil_temp", "ts": 1763900000123, "value": 41.2}

`ts` is epoch milliseconds UTC of the tick that made the value current (the OPC-UA source
timestamp for OPC-UA machines). A tag served with a bad status carries `"q": "bad"`.
"""

from __future__ import annotations

import json
import queue
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

from edge_agent.simulators.tags import Value

__all__ = ["TruthRow", "TruthWriter", "read_truth"]

TruthRow = tuple[str, str, Value, bool]  # machine, tag, value, bad


class TruthWriter:
    """Appends truth lines from a dedicated thread so the tick loop never waits on the disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[tuple[int, list[TruthRow]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="sim-truth-writer", daemon=True)
        self.lines = 0

    async def __aenter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Flush what is queued and stop the writer thread (blocks until done)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def record(self, ts_ms: int, rows: list[TruthRow]) -> None:
        """Queue the values one tick served (cheap: serialisation happens in the thread)."""
        if rows:
            self._queue.put((ts_ms, rows))

    def _run(self) -> None:
        dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        with self.path.open("w", encoding="utf-8", buffering=1 << 16) as out:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                ts, rows = item
                chunk = []
                for machine, tag, value, bad in rows:
                    line = {"machine": machine, "tag": tag, "ts": ts, "value": value}
                    if bad:
                        line["q"] = "bad"
                    chunk.append(dumps(line))
                out.write("\n".join(chunk) + "\n")
                self.lines += len(chunk)
                # Flush when idle so a reader (a test, a completeness check) sees recent ticks.
                if self._queue.empty():
                    out.flush()


def read_truth(path: Path) -> list[dict[str, object]]:
    """Parse a truth file into a list of dicts (for tests and completeness checks)."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
