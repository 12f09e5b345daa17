"""Validation worker processes that never outlive the hub.

A `ProcessPoolExecutor` worker waits on a queue whose write end it also holds, so it never sees
the hub go away: after a kill -9 of the hub (or of the demo) its workers would idle for ever,
one more set per crash. Each worker watches its parent instead and exits once it is gone.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

__all__ = ["worker_pool"]

PARENT_CHECK_S = 1.0


def _exit_with_parent(parent_pid: int) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)  # no clean-up to do: a worker holds nothing but the message it parses

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` processes that end when this process ends, however it ends."""
    # spawn, not fork: the hub already runs threads (paho, asyncpg's executor).
    return ProcessPoolExecutor(
        workers,
        mp_context=mp.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )
