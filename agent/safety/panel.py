"""The station's safety inputs (e-stop, door interlock, start and reset buttons) on GPIO.

gpiozero reports pin edges on its own thread (lgpio's callback thread on a Pi, the driving thread
with ``MockFactory``). Each edge is handed to the event loop with one ``call_soon_threadsafe``;
the debouncer and the listener then run on the loop, so the listener needs no locks. An e-stop
press reaches ``listener.on_estop(True)`` inside that very callback: no second hop, no timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from enum import StrEnum
from types import TracebackType
from typing import Protocol

from agent.safety.config import GpioConfig, InputPin
from agent.safety.debounce import DebouncedSignal
from agent.safety.pins import InputDevice, PinFactory, open_input

__all__ = ["SafetyInput", "SafetyListener", "SafetyPanel"]

log = logging.getLogger(__name__)


class SafetyInput(StrEnum):
    ESTOP = "estop"
    DOOR = "door"
    START = "start"
    RESET = "reset"


class SafetyListener(Protocol):
    """What the station does about its safety inputs. Every method runs on the event loop."""

    def on_estop(self, pressed: bool) -> None:
        """The e-stop was pressed (or its circuit broke), or was released again."""

    def on_door(self, open: bool) -> None:
        """The door interlock opened, or closed again."""

    def on_start_pressed(self) -> None:
        """The operator pressed the start button."""

    def on_reset_pressed(self) -> None:
        """The operator pressed the reset button."""


class _WatchedInput:
    """One configured input: its gpiozero device, its debouncer, the hop onto the loop."""

    def __init__(
        self,
        kind: SafetyInput,
        config: InputPin,
        pin_factory: PinFactory,
        loop: asyncio.AbstractEventLoop,
        on_change: Callable[[bool], None],
    ) -> None:
        self.kind = kind
        self._loop = loop
        self._normally_closed = config.normally_closed
        self._closed = False
        self._device: InputDevice = open_input(kind.value, config, pin_factory)
        safety = kind in (SafetyInput.ESTOP, SafetyInput.DOOR)
        self._signal = DebouncedSignal(
            loop,
            self.asserted,
            on_change,
            debounce_s=config.debounce_ms / 1000,
            # Safety inputs start from "safe" so a pressed e-stop or open door at start-up is
            # reported; a button already held at start-up is not a press.
            immediate=True if safety else None,
            initial=False if safety else self.asserted(),
        )
        self._device.when_activated = self._on_contact_closed
        self._device.when_deactivated = self._on_contact_opened

    def reads_asserted(self) -> bool:
        """Asserted by either account: the pin right now, or the last reported state.

        The pin covers start-up (before the first report) and a press not yet handed over; the
        reported state covers a release still settling, which callers must not see as released
        before ``on_estop(False)`` arrives.
        """
        return self._signal.state or self.asserted()

    def asserted(self) -> bool:
        """Pressed / open right now, read from the pin."""
        contact_closed = bool(self._device.is_active)
        return contact_closed != self._normally_closed

    # -- gpiozero's thread -----------------------------------------------------------------

    def _on_contact_closed(self) -> None:
        self._post(not self._normally_closed)

    def _on_contact_opened(self) -> None:
        self._post(self._normally_closed)

    def _post(self, asserted: bool) -> None:
        # The loop is closed only once the agent is shutting down; the edge no longer matters.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._feed, asserted)

    # -- the event loop --------------------------------------------------------------------

    def _feed(self, asserted: bool) -> None:
        if not self._closed:
            self._signal.feed(asserted)

    def feed_current(self) -> None:
        """Take the pin's present level as if an edge had just arrived (start-up)."""
        self._feed(self.asserted())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._signal.cancel()
        self._device.when_activated = None
        self._device.when_deactivated = None
        self._device.close()


class SafetyPanel:
    """Watches the configured safety inputs and tells ``listener`` about every change.

    Build and close it on the event loop thread. Callbacks start after the constructor returns:
    an e-stop already pressed (or a door already open) at start-up is reported as
    ``on_estop(True)`` / ``on_door(True)``; released/closed at start-up is not reported.
    Unconfigured inputs never report and read as released/closed.
    """

    def __init__(
        self,
        config: GpioConfig,
        pin_factory: PinFactory,
        loop: asyncio.AbstractEventLoop,
        listener: SafetyListener,
    ) -> None:
        self._listener = listener
        self._inputs: dict[SafetyInput, _WatchedInput] = {}
        handlers: dict[SafetyInput, Callable[[bool], None]] = {
            SafetyInput.ESTOP: self._estop_changed,
            SafetyInput.DOOR: self._door_changed,
            SafetyInput.START: self._start_changed,
            SafetyInput.RESET: self._reset_changed,
        }
        try:
            for kind in SafetyInput:
                pin_config: InputPin | None = getattr(config, kind.value)
                if pin_config is not None:
                    self._inputs[kind] = _WatchedInput(
                        kind, pin_config, pin_factory, loop, handlers[kind]
                    )
        except BaseException:
            self.close()
            raise
        for watched in self._inputs.values():
            loop.call_soon_threadsafe(watched.feed_current)

    @property
    def estop_pressed(self) -> bool:
        """The e-stop pin reads pressed (or its NC circuit is broken) now, or its release has
        not been reported yet (still debouncing). Valid from construction on."""
        return self._read(SafetyInput.ESTOP)

    @property
    def door_open(self) -> bool:
        """Like :attr:`estop_pressed`, for the door interlock."""
        return self._read(SafetyInput.DOOR)

    def _read(self, kind: SafetyInput) -> bool:
        watched = self._inputs.get(kind)
        return watched is not None and watched.reads_asserted()

    def _estop_changed(self, pressed: bool) -> None:
        # The listener first: logging may block on a slow handler, the stop must not wait.
        self._listener.on_estop(pressed)
        log.warning("e-stop %s", "pressed" if pressed else "released")

    def _door_changed(self, is_open: bool) -> None:
        self._listener.on_door(is_open)
        log.info("door %s", "opened" if is_open else "closed")

    def _start_changed(self, pressed: bool) -> None:
        if pressed:
            self._listener.on_start_pressed()

    def _reset_changed(self, pressed: bool) -> None:
        if pressed:
            self._listener.on_reset_pressed()

    def close(self) -> None:
        """Stop reporting and release the pins (idempotent)."""
        for watched in self._inputs.values():
            watched.close()

    def __enter__(self) -> SafetyPanel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
