"""The stack light (green, amber, red) and buzzer that show the station's state on the floor.

=========  =======================  =============================================
state      lamps                    buzzer
=========  =======================  =============================================
IDLE       green steady             silent
RUNNING    amber steady             silent
ATTENTION  amber blinking           silent (awaiting the operator, paused, door)
FAULT      red steady               three short beeps on entering
ESTOP      red blinking             one long beep (1 s) on entering
=========  =======================  =============================================

Why: steady red vs blinking red tells "needs a technician" from "someone hit the e-stop" across
the room. The buzzer calls once on entering a state and then stays quiet: an e-stop is often
held down for minutes during maintenance, and a buzzer that never stops gets disconnected.
Blinking and beeping run on gpiozero's background threads; :meth:`StackLight.show` returns at
once. Unconfigured lamps are simply skipped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import Enum, StrEnum
from types import TracebackType

from agent.safety.config import GpioConfig
from agent.safety.pins import OutputDevice, PinFactory, open_buzzer, open_lamp

__all__ = ["LIGHT_PATTERNS", "Lamp", "LightPattern", "LightState", "StackLight", "Tone"]


class LightState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    ATTENTION = "attention"
    FAULT = "fault"
    ESTOP = "estop"


class Lamp(Enum):
    OFF = "off"
    ON = "on"
    BLINK = "blink"


@dataclass(frozen=True)
class Tone:
    """``count`` beeps of ``on_s`` seconds, ``off_s`` apart; played once on entering a state."""

    count: int
    on_s: float
    off_s: float


SILENT = Tone(0, 0.0, 0.0)
SHORT_BEEPS = Tone(3, 0.15, 0.15)
LONG_BEEP = Tone(1, 1.0, 0.0)


@dataclass(frozen=True)
class LightPattern:
    green: Lamp
    amber: Lamp
    red: Lamp
    tone: Tone


LIGHT_PATTERNS: dict[LightState, LightPattern] = {
    LightState.IDLE: LightPattern(Lamp.ON, Lamp.OFF, Lamp.OFF, SILENT),
    LightState.RUNNING: LightPattern(Lamp.OFF, Lamp.ON, Lamp.OFF, SILENT),
    LightState.ATTENTION: LightPattern(Lamp.OFF, Lamp.BLINK, Lamp.OFF, SILENT),
    LightState.FAULT: LightPattern(Lamp.OFF, Lamp.OFF, Lamp.ON, SHORT_BEEPS),
    LightState.ESTOP: LightPattern(Lamp.OFF, Lamp.OFF, Lamp.BLINK, LONG_BEEP),
}


class StackLight:
    """Drives the configured lamps and buzzer. Everything starts off until the first show()."""

    def __init__(self, config: GpioConfig, pin_factory: PinFactory) -> None:
        self._half_period_s = 0.5 / config.blink_hz
        self._state: LightState | None = None
        self._green: OutputDevice | None = None
        self._amber: OutputDevice | None = None
        self._red: OutputDevice | None = None
        self._buzzer: OutputDevice | None = None
        try:
            if config.light_green is not None:
                self._green = open_lamp("light_green", config.light_green, pin_factory)
            if config.light_amber is not None:
                self._amber = open_lamp("light_amber", config.light_amber, pin_factory)
            if config.light_red is not None:
                self._red = open_lamp("light_red", config.light_red, pin_factory)
            if config.buzzer is not None:
                self._buzzer = open_buzzer("buzzer", config.buzzer, pin_factory)
        except BaseException:
            self.close()
            raise

    @property
    def state(self) -> LightState | None:
        """What is shown now; None before the first show() and after close()."""
        return self._state

    def show(self, state: LightState) -> None:
        """Show ``state``. Showing the state already shown changes nothing (no second beep)."""
        if state == self._state:
            return
        self._state = state
        pattern = LIGHT_PATTERNS[state]
        self._set_lamp(self._green, pattern.green)
        self._set_lamp(self._amber, pattern.amber)
        self._set_lamp(self._red, pattern.red)
        self._sound(pattern.tone)

    def _set_lamp(self, lamp: OutputDevice | None, mode: Lamp) -> None:
        if lamp is None:
            return
        if mode is Lamp.ON:
            lamp.on()
        elif mode is Lamp.BLINK:
            lamp.blink(on_time=self._half_period_s, off_time=self._half_period_s)
        else:
            lamp.off()

    def _sound(self, tone: Tone) -> None:
        if self._buzzer is None:
            return
        if tone.count == 0:
            self._buzzer.off()
        else:
            self._buzzer.beep(on_time=tone.on_s, off_time=tone.off_s, n=tone.count)

    def close(self) -> None:
        """Everything off, pins released (idempotent)."""
        self._state = None
        for device in (self._green, self._amber, self._red, self._buzzer):
            if device is not None:
                # A device whose pin is already gone must not keep the others lit.
                with contextlib.suppress(Exception):
                    device.off()
                device.close()
        self._green = self._amber = self._red = self._buzzer = None

    def __enter__(self) -> StackLight:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
