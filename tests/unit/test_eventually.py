"""The tests' one wait: returns the first truthy value, names what it waited for, and raises a
watched task's failure at once instead of timing out."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.eventually import TaskEndedError, eventually, eventually_sync


async def test_returns_the_first_truthy_value() -> None:
    seen: list[int] = []

    async def produce() -> None:
        for n in range(3):
            await asyncio.sleep(0.01)
            seen.append(n)

    producer = asyncio.create_task(produce())
    got = await eventually(lambda: [n for n in seen if n == 2], what="the third value")
    await producer
    assert got == [2]


async def test_a_timeout_names_what_was_awaited_and_what_was_seen() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the cutter to go idle; seen: busy"):
        await eventually(lambda: False, what="the cutter to go idle", timeout=0.05,
                         context=lambda: "busy")


async def test_a_watched_task_failure_is_raised_at_once_not_as_a_timeout() -> None:
    async def emulator() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("bad status report")

    task = asyncio.create_task(emulator(), name="grbl")
    with pytest.raises(TaskEndedError, match=r"'grbl' failed while waiting for idle") as caught:
        await eventually(lambda: False, what="idle", timeout=30, watch=[task])
    # The emulator's own error, not "timed out": the wait ended when the task did.
    assert isinstance(caught.value.__cause__, ValueError)


async def test_a_watched_task_that_returns_early_is_reported() -> None:
    task = asyncio.create_task(asyncio.sleep(0), name="agent")
    with pytest.raises(TaskEndedError, match=r"'agent' ended while waiting for online"):
        await eventually(lambda: False, what="online", timeout=30, watch=[task])


async def test_a_cancelled_watched_task_is_not_a_failure() -> None:
    task = asyncio.create_task(asyncio.sleep(10), name="emulator")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await eventually(lambda: 7, what="seven", watch=[task, None]) == 7


async def test_a_wake_event_rechecks_as_soon_as_it_is_set() -> None:
    wake = asyncio.Event()
    box: list[str] = []

    def deliver() -> None:
        box.append("succeeded")
        wake.set()

    asyncio.get_running_loop().call_later(0.01, deliver)
    assert await eventually(lambda: box, what="an event", timeout=5, wake=wake) == ["succeeded"]


def test_sync_variant_returns_and_times_out() -> None:
    calls: list[int] = []

    def third_call() -> bool:
        calls.append(1)
        return len(calls) >= 3

    assert eventually_sync(third_call, what="three calls", poll_s=0.001) is True
    with pytest.raises(AssertionError, match="waiting for never"):
        eventually_sync(lambda: None, what="never", timeout=0.01, poll_s=0.001)
