"""Shutdown survives libraries that swallow a cancel (edge_agent/cancel.py)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from edge_agent.cancel import cancel_and_wait, recheck_cancel


async def _swallows_first_cancel(stopped: list[str]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(60)
    try:
        await asyncio.sleep(60)
    finally:
        stopped.append("second cancel")


async def test_cancel_and_wait_cancels_again_what_swallowed_the_first() -> None:
    stopped: list[str] = []
    stubborn = asyncio.create_task(_swallows_first_cancel(stopped), name="stubborn")
    polite = asyncio.create_task(asyncio.sleep(60), name="polite")
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await cancel_and_wait([stubborn, polite], retry_s=0.05)
    assert stubborn.cancelled()
    assert polite.cancelled()
    assert stopped == ["second cancel"]


async def test_recheck_cancel_restores_a_cancel_lost_in_a_task_group() -> None:
    class LostError(Exception):
        pass

    async def child(go: asyncio.Event) -> None:
        await go.wait()
        raise LostError

    async def parent(go: asyncio.Event, swallowed: list[bool]) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(child(go))
        except* LostError:
            swallowed.append(True)  # the TaskGroup raised the child's error, not the cancel
        recheck_cancel()
        await asyncio.sleep(60)  # without recheck_cancel the task would run on here

    go = asyncio.Event()
    swallowed: list[bool] = []
    task = asyncio.create_task(parent(go, swallowed))
    await asyncio.sleep(0.01)
    go.set()  # the child fails in the same event-loop step as the parent's cancel
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task
    assert swallowed == [True]
