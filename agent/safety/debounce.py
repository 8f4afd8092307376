"""Debouncing one input on the event loop, without ever delaying the safe direction.

A mechanical contact chatters for a few milliseconds when it moves. The usual remedy, "report a
level once it has held still for N ms", would also hold back an e-stop press by N ms. So the
policy depends on the input:

- A *safety* input (e-stop, door) reports the first edge towards the asserted state (pressed,
  open) at once; chatter after it is absorbed because the state is already asserted. The way
  back (released, closed) counts only once the contact has stayed there ``debounce_s``: a
  bouncing release never produces a pressed/released/pressed storm.
- A plain button (start, reset) reports a change only once it has held still ``debounce_s`` in
  both directions, so electrical noise can never start a job.

Everything here runs on the event loop thread; raw edges come in through :meth:`feed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class DebouncedSignal:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        read_raw: Callable[[], bool],
        on_change: Callable[[bool], None],
        *,
        debounce_s: float,
        immediate: bool | None,
        initial: bool,
    ) -> None:
        """``immediate``: the level reported without waiting (True for safety inputs), or None.

        ``read_raw`` gives the input's level now; it is consulted when a wait ends, because
        edges still queued behind the timer would otherwise be judged out of order.
        """
        self._loop = loop
        self._read_raw = read_raw
        self._on_change = on_change
        self._debounce_s = debounce_s
        self._immediate = immediate
        self._state = initial
        self._timer: asyncio.TimerHandle | None = None

    @property
    def state(self) -> bool:
        """The last reported (debounced) level."""
        return self._state

    def feed(self, raw: bool) -> None:
        """One raw edge (or a fresh reading) of the input."""
        if raw == self._state:
            # Back where we were before the wait started: that change was chatter.
            self._cancel_timer()
            return
        if self._debounce_s <= 0 or raw == self._immediate:
            self._cancel_timer()
            self._report(raw)
            return
        self._cancel_timer()
        self._timer = self._loop.call_later(self._debounce_s, self._settle)

    def _settle(self) -> None:
        self._timer = None
        raw = self._read_raw()
        if raw != self._state:
            self._report(raw)

    def _report(self, level: bool) -> None:
        self._state = level
        self._on_change(level)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def cancel(self) -> None:
        """Forget a pending wait (the input is being closed)."""
        self._cancel_timer()
