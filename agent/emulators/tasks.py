"""The lifetime the Marlin and HP-GL emulators share: their loops run as tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Self


class EmulatorTasks:
    """``start()`` launches the emulator's loops, ``stop()`` cancels and awaits them, ``serve()``
    runs until cancelled (the ``station-agent emulate`` entry point), ``async with`` does both."""

    _tasks: list[asyncio.Task[None]]

    def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        await self._cancel_tasks()

    def _launch(self, **loops: Coroutine[Any, Any, None]) -> None:
        self._tasks = [asyncio.create_task(coro, name=name) for name, coro in loops.items()]

    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def serve(self) -> None:
        self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
