"""Which committed batches each publisher still has to be told about (pure, clock passed in)."""

from __future__ import annotations

__all__ = ["ReceiptTracker"]


class ReceiptTracker:
    """Collects committed (src, seq, digest); hands them out at most once per interval per src."""

    def __init__(self, interval_ms: int = 200) -> None:
        self._interval_ms = interval_ms
        self._pending: dict[str, set[tuple[int, str]]] = {}
        self._last_sent: dict[str, int] = {}

    def add(self, src: str, seq: int, digest: str) -> None:
        """Record that batch `seq` of `src`, whose payload has `digest`, is committed."""
        self._pending.setdefault(src, set()).add((seq, digest))

    def due(self, now_ms: int) -> list[tuple[str, list[tuple[int, str]]]]:
        """Pending (seq, digest) of every src not told within the interval, sorted; marks them
        sent."""
        out = []
        for src in sorted(self._pending):
            if now_ms - self._last_sent.get(src, -self._interval_ms) < self._interval_ms:
                continue
            out.append((src, sorted(self._pending.pop(src))))
            self._last_sent[src] = now_ms
        # Forget publishers that went quiet, so the map stays as small as the active set.
        stale = [s for s, t in self._last_sent.items() if now_ms - t > 60_000]
        for src in stale:
            if src not in self._pending:
                del self._last_sent[src]
        return out

    def __len__(self) -> int:
        return sum(len(v) for v in self._pending.values())
