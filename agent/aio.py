"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def run_together(*coros: Coroutine[Any, Any, Any]) -> None:
    """Run coroutines concurrently until the first one ends; cancel the rest.

    Unlike a TaskGroup, the first failure propagates as itself (not inside an ExceptionGroup),
    so callers can catch the agent's own error types.
    """
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for t in done:
        if not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]


async def wait_within(aw: Awaitable[T], timeout: float | None) -> T:
    """``await aw``, raising TimeoutError after ``timeout`` seconds (None: no limit).

    Use this, not ``asyncio.wait_for``: on Python 3.11 ``wait_for`` returns normally when a
    cancellation arrives just as the awaited thing completes, so a ``while True`` loop around it
    swallows the one cancel a TaskGroup sends and never ends (a pool keeper hung in CI that
    way). Nor ``asyncio.timeout``: before 3.11.3 (Raspberry Pi OS bookworm ships 3.11.2) it
    turns its own expiry into CancelledError inside a task that is already being cancelled,
    which is where cleanup code waits. Here a cancel from outside always wins, our own expiry
    is always TimeoutError, and ``aw`` runs in this task rather than a new one.
    """
    if timeout is None:
        return await aw
    task = asyncio.current_task()
    assert task is not None, "wait_within runs inside a task"
    cancelling = task.cancelling()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    handle = asyncio.get_running_loop().call_later(max(0.0, timeout), expire)
    try:
        result = await aw
    except asyncio.CancelledError:
        if expired and task.uncancel() <= cancelling:
            raise TimeoutError from None
        raise
    finally:
        handle.cancel()
    if expired:
        task.uncancel()  # ``aw`` finished in spite of our cancel: do not leave it counted
    return result


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True if it was set."""
    if event.is_set():
        return True
    try:
        await wait_within(event.wait(), timeout)
    except TimeoutError:
        return event.is_set()
    return True
