"""Batch sequence numbers: reservation blocks persisted ahead of use (pure).

Seqs are handed out from memory and only the *reservation ceiling* is written durably before a
seq above it is used, so claiming a batch never waits for an fsync. After a crash the next seq
starts at the ceiling: strictly increasing across restarts, with gaps, which receipts tolerate.
"""

from __future__ import annotations

__all__ = ["SeqAllocator"]


class SeqAllocator:
    """Hand out strictly increasing seqs; report when a new ceiling must be persisted first."""

    def __init__(self, start: int, block: int = 10_000) -> None:
        self.next = start
        self.ceiling = start  # nothing reserved yet: the first take must persist a ceiling
        self.block = block

    def take(self) -> tuple[int, int | None]:
        """Return (seq, new_ceiling_to_persist_or_None)."""
        seq = self.next
        self.next += 1
        if seq >= self.ceiling:
            self.ceiling = seq + self.block
            return seq, self.ceiling
        return seq, None
