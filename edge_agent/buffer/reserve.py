"""Room kept on the buffer's disk for the day it fills up (a ballast file next to the buffer).

SQLite needs free space for every write, deletes included: with the disk full, the agent could
neither delete what the hub has confirmed nor mark batches as sent. The reserve is a file of zeros
the agent gives back the moment a write fails for lack of space, so the buffer can go on sending,
deleting on receipt and dropping its oldest readings by its policy; it is made again once the
disk has room for it twice over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

__all__ = ["DiskReserve"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_MIN_FREE = 16 << 20  # without a reserve: the free space that ends the disk-full state


class DiskReserve:
    """`<buffer>.reserve`: `size` bytes held back for when the disk fills (0 disables it)."""

    def __init__(self, buffer_path: Path, size: int) -> None:
        self.path = buffer_path.with_name(buffer_path.name + ".reserve")
        self.size = size

    def free_bytes(self) -> int:
        """Free space on the buffer's filesystem (for an unprivileged process)."""
        return shutil.disk_usage(self.path.parent).free

    def held(self) -> bool:
        """True when the reserve file is there, whole."""
        try:
            return self.path.stat().st_size >= self.size
        except OSError:
            return False

    def ensure(self) -> bool:
        """Make the reserve if it is missing and the disk has room for it twice; True if held."""
        if self.size <= 0 or self.held():
            return True
        try:
            if self.free_bytes() < 2 * self.size:
                return False
            with self.path.open("wb") as f:
                zeros = bytes(_CHUNK)
                left = self.size
                while left > 0:
                    left -= f.write(zeros[: min(left, _CHUNK)])
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            log.warning("could not make the disk reserve %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                self.path.unlink()
            return False
        return True

    def recovered(self) -> bool:
        """After a full disk: True once there is room again (the reserve is made anew)."""
        if self.size > 0:
            return self.ensure()
        return self.free_bytes() >= _MIN_FREE

    def release(self) -> bool:
        """Give the reserve back to the filesystem; True if there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.warning("could not release the disk reserve %s: %s", self.path, exc)
            return False
        return True
