"""One agent per buffer: an exclusive lock held for as long as the agent runs.

Two agents on one buffer would publish the same `src`/`seq` numbers for different readings and
each delete the other's batches on receipt. The lock is an `flock` on a file next to the buffer,
so the kernel releases it when the process ends, even by kill -9: a stale lock cannot exist.
`status` and `buffer purge` ask the same lock whether an agent is running, which is exact at
once after a stop (a status file's age can only guess).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from edge_agent.errors import MillstreamAgentError

__all__ = ["AgentAlreadyRunning", "hold_agent_lock", "lock_holder", "lock_path"]


class AgentAlreadyRunning(MillstreamAgentError):  # noqa: N818 -- names the state, as callers say it
    """Another agent process holds this buffer."""


def lock_path(buffer_file: Path) -> Path:
    """The lock file that belongs to `buffer_file`."""
    return buffer_file.with_name(buffer_file.name + ".lock")


@contextlib.contextmanager
def hold_agent_lock(buffer_file: Path, wait_s: float = 1.0) -> Iterator[None]:
    """Hold the buffer's lock until the block ends; raise if another agent holds it.

    Tries for `wait_s`: `lock_holder` takes the lock for an instant to test it, and an agent
    starting in that instant must not give up.
    """
    path = lock_path(buffer_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        if not _lock(fd, wait_s):
            holder = _read_pid(fd)
            who = f" (pid {holder})" if holder else ""
            raise AgentAlreadyRunning(
                f"another edge-agent is running on the buffer {buffer_file}{who}; stop it "
                "first (systemctl stop millstream-agent), or give this config its own "
                "buffer.path"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _lock(fd: int, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        else:
            return True


def lock_holder(buffer_file: Path) -> int | None:
    """The pid of the running agent on `buffer_file` (0 if its pid is unreadable), else None.

    Needs only read access to the lock file, so a technician in the service's group can ask.
    Raises OSError when the lock file exists but cannot be opened.
    """
    path = lock_path(buffer_file)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None
