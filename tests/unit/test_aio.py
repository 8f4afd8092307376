"""The asyncio helpers keep a cancellation even when it races with what they wait for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from agent.aio import wait_event, wait_within


async def _event_loop_forever(event: asyncio.Event) -> None:
    while True:
        await wait_event(event, 30)
        event.clear()


async def _within_loop_forever(event: asyncio.Event) -> None:
    while True:
        with contextlib.suppress(TimeoutError):
            await wait_within(event.wait(), 30)
        event.clear()


@pytest.mark.parametrize("loop_forever", [_event_loop_forever, _within_loop_forever])
@pytest.mark.parametrize("hops", range(6))
async def test_a_cancel_arriving_as_the_event_is_set_ends_the_waiting_loop(
        hops: int, loop_forever: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    # The event is set and the cancel follows after 0..5 trips round the loop: some of these
    # land exactly where asyncio.wait_for on 3.11 would return normally and lose the cancel.
    event = asyncio.Event()
    task = asyncio.create_task(loop_forever(event))
    await asyncio.sleep(0)
    event.set()
    for _ in range(hops):
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert task in done, f"the loop swallowed its cancel (after {hops} hops)"
    assert task.cancelled()


async def test_wait_event_reports_set_and_timed_out() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0) is False
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 0) is True
    assert await wait_event(event, None) is True


async def test_wait_event_without_timeout_waits_until_set() -> None:
    event = asyncio.Event()
    waiter = asyncio.create_task(wait_event(event, None))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    event.set()
    assert await waiter is True


async def test_wait_within_returns_the_result_or_raises_timeout_error() -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[str] = loop.create_future()
    ready.set_result("ok")
    assert await wait_within(ready, 1) == "ok"
    never: asyncio.Future[str] = loop.create_future()
    with pytest.raises(TimeoutError):
        await wait_within(never, 0.01)
    assert never.cancelled()


async def test_a_cancel_from_outside_wins_over_the_timeout() -> None:
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    task = asyncio.create_task(wait_within(never, 30))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_timeout_still_works_in_cleanup_after_a_cancel() -> None:
    # Cleanup code (closing a connection, waiting briefly for a goodbye) runs in a task that is
    # already cancelled; its own timeout must still come out as TimeoutError, and the task
    # must still end cancelled.
    loop = asyncio.get_running_loop()
    outcome: list[str] = []

    async def worker() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            never: asyncio.Future[None] = loop.create_future()
            try:
                await wait_within(never, 0.01)
            except TimeoutError:
                outcome.append("timed out")
            current = asyncio.current_task()
            assert current is not None
            outcome.append(f"cancelling={current.cancelling()}")

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outcome == ["timed out", "cancelling=1"]
