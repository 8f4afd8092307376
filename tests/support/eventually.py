"""One way for a test to wait: until a condition holds, naming what it waited for.

``eventually`` polls a predicate and returns its first truthy value. While it waits it watches
the tasks a test depends on (the emulator, the agent): if one of them ends with an exception,
that exception is raised at once, so an emulator crash reads as the crash and not as a timeout
twenty seconds later. A ``wake`` event (set by whatever records new messages) lets the wait
re-check as soon as something changed instead of at the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

POLL_S = 0.02


# Tasks whose end has been raised to a test once: a rig closing does not raise it again.
REPORTED: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


class TaskEndedError(AssertionError):
    """A watched task returned while the test still depended on it (it should run until the
    test ends); the task's own exception, if any, is the ``__cause__``."""


def raise_if_ended(watch: Iterable[asyncio.Task[Any] | None], what: str) -> None:
    """Raise a watched task's failure (or its silent end) now, naming what was awaited."""
    for task in watch:
        if task is None or not task.done() or task.cancelled():
            continue
        REPORTED.add(task)
        error = _leaf(task.exception())
        if error is not None:
            raise TaskEndedError(
                f"task {task.get_name()!r} failed while waiting for {what}: {error!r}"
            ) from error
        raise TaskEndedError(f"task {task.get_name()!r} ended while waiting for {what}")


def _leaf(error: BaseException | None) -> BaseException | None:
    """The one real error inside a task group's wrapping (the emulators run as task groups)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


async def eventually(
    predicate: Callable[[], T],
    *,
    what: str,
    timeout: float = 20.0,
    watch: Iterable[asyncio.Task[Any] | None] = (),
    wake: asyncio.Event | None = None,
    context: Callable[[], object] | None = None,
    poll_s: float = POLL_S,
) -> T:
    """The predicate's first truthy value within ``timeout`` seconds.

    ``watch``: tasks whose failure ends the wait with their own exception.
    ``context``: called on timeout; its value goes into the failure message (recent events, the
    emulator's state), so a failure says what was seen instead of only what was not.
    ``poll_s``: how often to look when nothing wakes the wait (safety tests look every 2 ms).
    """
    tasks = list(watch)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        raise_if_ended(tasks, what)
        result = predicate()
        if result:
            return result
        remaining = deadline - loop.time()
        if remaining <= 0:
            seen = f"; seen: {context()}" if context is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{seen}")
        await _pause(min(remaining, poll_s if wake is None else 0.5), tasks, wake)


async def _pause(seconds: float, tasks: list[asyncio.Task[Any] | None],
                 wake: asyncio.Event | None) -> None:
    """Sleep up to ``seconds``; return early when ``wake`` is set or a watched task ends."""
    waiters: set[asyncio.Future[Any]] = {t for t in tasks if t is not None and not t.done()}
    woken: asyncio.Task[bool] | None = None
    if wake is not None:
        wake.clear()
        woken = asyncio.ensure_future(wake.wait())
        waiters.add(woken)
    if not waiters:
        await asyncio.sleep(seconds)
        return
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if woken is not None:
            woken.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await woken


def eventually_sync(predicate: Callable[[], T], *, what: str, timeout: float = 20.0,
                    poll_s: float = 0.05) -> T:
    """``eventually`` for tests with no event loop (a child process, a file appearing)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll_s)
