"""Helpers for the safety I/O tests: wiring actions on mock pins, waiting on the loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from gpiozero.pins.mock import MockPin

from tests.support.eventually import eventually

WAIT_S = 5.0


@dataclass
class RecordingListener:
    """A SafetyListener that writes down what it was told, and on which thread."""

    events: list[tuple[str, bool | None]] = field(default_factory=list)
    threads: set[int] = field(default_factory=set)

    def _record(self, name: str, value: bool | None) -> None:
        self.threads.add(threading.get_ident())
        self.events.append((name, value))

    def on_estop(self, pressed: bool) -> None:
        self._record("estop", pressed)

    def on_door(self, open: bool) -> None:
        self._record("door", open)

    def on_start_pressed(self) -> None:
        self._record("start", None)

    def on_reset_pressed(self) -> None:
        self._record("reset", None)


async def until(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Let the loop run until ``predicate`` holds; fail naming ``what`` after the timeout."""
    await eventually(predicate, what=what, timeout=timeout_s, poll_s=0.002)


async def settle(seconds: float) -> None:
    """Let the loop run a while so that anything still due would have happened."""
    await asyncio.sleep(seconds)


def close_contact(pin: MockPin, *, active_low: bool = True) -> None:
    """The switch conducts: the line goes to ground (active low) or 3.3 V."""
    if active_low:
        pin.drive_low()
    else:
        pin.drive_high()


def open_contact(pin: MockPin, *, active_low: bool = True) -> None:
    """The switch stops conducting: the pull resistor takes the line to its idle level."""
    if active_low:
        pin.drive_high()
    else:
        pin.drive_low()


def break_wire(pin: MockPin) -> None:
    """A cut cable: nothing drives the line, only the pull resistor the agent configured."""
    assert pin.pull in ("up", "down"), "a broken wire on a floating input reads anything"
    if pin.pull == "up":
        pin.drive_high()
    else:
        pin.drive_low()


def toggles(pin: MockPin) -> int:
    """How often the mock pin changed level since it was created (or last cleared)."""
    return len(pin.states) - 1
