"""Batch sequence numbers: reservation blocks persisted ahead of use, and range helpers (pure).

Seqs are handed out from memory and only the *reservation ceiling* is written durably before a
seq above it is used, so claiming a batch never waits for an fsync. After a crash the next seq
starts at the ceiling: strictly increasing across restarts, with gaps, which receipts tolerate.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SeqAllocator", "merge_ranges", "to_ranges"]


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


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping or adjacent inclusive ranges."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def to_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Compress seqs into inclusive ranges."""
    return merge_ranges((s, s) for s in seqs)
