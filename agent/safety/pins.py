"""Opening gpiozero devices on an injected pin factory, with errors that name the config key.

The pin factory is always passed in (``pin_factory=`` on every device): library code never
touches gpiozero's process-wide ``Device.pin_factory``, so tests use a fresh ``MockFactory`` each
and the agent on a Pi uses :func:`hardware_pin_factory`.
"""

from __future__ import annotations

from typing import Any

from gpiozero import LED, Buzzer, DigitalInputDevice
from gpiozero.exc import GPIOZeroError

from agent.safety.config import InputPin, OutputPin
from agent.safety.errors import SafetyIoError

# gpiozero ships no type hints: these aliases only say what is meant.
PinFactory = Any
InputDevice = Any
OutputDevice = Any


def hardware_pin_factory(chip: int | None = None) -> PinFactory:
    """The lgpio pin factory for the Pi's own header (a Pi 5 needs lgpio; earlier Pis work too).

    Callbacks then arrive on lgpio's thread. lgpio writes a notification FIFO into its working
    directory: run the agent with ``LG_WD`` (or the working directory) set to a writable folder.
    """
    try:
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory(chip=chip)
    # The backend raises its own types (ImportError without lgpio, lgpio.error without a chip).
    except Exception as exc:  # noqa: BLE001
        raise SafetyIoError(
            f"no GPIO available (lgpio pin factory): {exc}", code="gpio_unavailable"
        ) from None


def _unusable(key: str, pin: int, exc: Exception) -> SafetyIoError:
    return SafetyIoError(f"gpio.{key}: cannot use GPIO{pin}: {exc}", code="gpio_pin_unusable")


def open_input(key: str, config: InputPin, pin_factory: PinFactory) -> InputDevice:
    """A digital input whose ``is_active`` means "the contact is closed".

    No gpiozero bounce time: lgpio implements it as "report only after the level held still",
    which would delay an e-stop press; debouncing is done by agent.safety.debounce instead.
    """
    # gpiozero derives the active level from the pull resistor; without one it must be told.
    active_state = None if config.pull_up is not None else not config.active_low
    try:
        return DigitalInputDevice(
            config.pin,
            pull_up=config.pull_up,
            active_state=active_state,
            bounce_time=None,
            pin_factory=pin_factory,
        )
    except (GPIOZeroError, OSError, ValueError) as exc:
        raise _unusable(key, config.pin, exc) from None


def open_lamp(key: str, config: OutputPin, pin_factory: PinFactory) -> OutputDevice:
    return _open_output(LED, key, config, pin_factory)


def open_buzzer(key: str, config: OutputPin, pin_factory: PinFactory) -> OutputDevice:
    return _open_output(Buzzer, key, config, pin_factory)


def _open_output(kind: Any, key: str, config: OutputPin, pin_factory: PinFactory) -> OutputDevice:
    try:
        return kind(
            config.pin,
            active_high=config.active_high,
            initial_value=False,
            pin_factory=pin_factory,
        )
    except (GPIOZeroError, OSError, ValueError) as exc:
        raise _unusable(key, config.pin, exc) from None
