"""Re-raise cancellations that Python 3.11's asyncio swallows.

Two places in the standard library drop a `task.cancel()` that arrives at the wrong moment:

- `asyncio.wait_for` (used inside aiomqtt and asyncua) when the cancel lands as its future
  completes (CPython gh-86296);
- `asyncio.TaskGroup`, when a child fails while the parent is being cancelled: `__aexit__`
  raises the children's ExceptionGroup instead of CancelledError, so an `except*` for the
  child's error ends the cancellation.

The task then runs on while whoever cancelled it waits forever (a SIGTERM that never stops the
agent). `Task.cancelling()` still counts the request, so checking it after such an await
restores the cancel. One caveat, also 3.11: a TaskGroup whose body had already finished when a
child failed leaves its own cancel counted, so the body must still be awaiting something when
its children can fail (see `OpcuaSession.run_until_lost`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

__all__ = ["cancel_and_wait", "recheck_cancel"]

log = logging.getLogger(__name__)


def recheck_cancel() -> None:
    """Raise CancelledError if this task was asked to cancel and the request got lost."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]], *, retry_s: float = 1.0) -> None:
    """Cancel `tasks` and wait until all are done, cancelling again any that swallowed it.

    The safety net for shutdown: a library that loses one cancel must not keep the agent from
    committing its buffer and stopping.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=retry_s)
        for task in pending:
            log.warning("task %s outlived a cancel; cancelling again", task.get_name())
