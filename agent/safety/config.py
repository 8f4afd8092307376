"""Which GPIO pins carry the station's safety inputs and stack light, and how they are wired.

Every input is a contact (a switch or button) between a GPIO pin and either ground
(``active_low``, the usual wiring, with the pull-up resistor holding the line high while the
contact is open) or 3.3 V. Each input reports one *asserted* condition: e-stop pressed, door open,
button pressed.

- ``normally_closed = false``: asserted while the contact is closed (a plain push button).
- ``normally_closed = true``: asserted while the contact is open. E-stops and door interlocks use
  such contacts on purpose: a broken wire or an unplugged connector also opens the circuit, so it
  reads as pressed/open and stops the machine (fail safe). It is the default for ``estop`` and
  ``door``.

Example (``[gpio]`` in the agent's TOML)::

    [gpio]
    blink_hz = 2.0
    estop = { pin = "GPIO17" }            # NC contact to ground, internal pull-up
    door = { pin = 27, debounce_ms = 50 }
    start = { pin = 22 }                  # NO push button to ground
    light_green = { pin = 5 }
    light_amber = { pin = 6 }
    light_red = { pin = 13 }
    buzzer = { pin = 19 }
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from agent.strict import StrictModel

__all__ = ["GpioConfig", "GpioPin", "InputPin", "OutputPin", "SafetyInputPin"]

_PIN_NAME = re.compile(r"^(?:GPIO|BCM)(\d{1,2})$", re.IGNORECASE)


def _pin_number(value: object) -> object:
    """Accept a Broadcom (BCM) GPIO number as an int or as a name like ``"GPIO17"``."""
    if isinstance(value, bool):
        # ValueError, not TypeError: pydantic turns only ValueError into a validation error.
        raise ValueError(  # noqa: TRY004
            "pin must be a GPIO number 0-53 or a name like 'GPIO17', not a boolean"
        )
    if isinstance(value, str):
        match = _PIN_NAME.match(value.strip())
        if match is None:
            raise ValueError(f"pin {value!r} is not a GPIO name like 'GPIO17' or 'BCM17'")
        return int(match.group(1))
    return value


# Normalised to the BCM number, so duplicate pins are caught however they were written.
GpioPin = Annotated[int, BeforeValidator(_pin_number), Field(ge=0, le=53)]


class InputPin(StrictModel):
    pin: GpioPin
    # The contact connects the pin to ground when closed (true) or to 3.3 V (false).
    active_low: bool = True
    # Internal resistor: true pull-up, false pull-down, null none (an external resistor is
    # fitted). Left out, it is the one that holds the line at its open-contact level.
    pull_up: bool | None = None
    # Asserted while the contact is open (see the module docstring).
    normally_closed: bool = False
    # A change back to the idle state (and any change of a plain button) counts only once the
    # contact has held still this long. See agent.safety.debounce for why the safe direction
    # of e-stop and door is never delayed.
    debounce_ms: Annotated[int, Field(ge=0, le=1000)] = 20

    @model_validator(mode="before")
    @classmethod
    def _default_pull(cls, data: Any) -> Any:
        if isinstance(data, dict) and "pull_up" not in data:
            return {**data, "pull_up": data.get("active_low", True)}
        return data

    @model_validator(mode="after")
    def _check_pull(self) -> InputPin:
        if self.pull_up is not None and self.pull_up != self.active_low:
            resistor = "pull-up" if self.pull_up else "pull-down"
            level = "ground" if self.active_low else "3.3 V"
            raise ValueError(
                f"pull_up={str(self.pull_up).lower()} contradicts "
                f"active_low={str(self.active_low).lower()}: a {resistor} holds the line at the "
                f"level of a contact closed to {level}, so the pin could never see it open; use "
                f"pull_up={str(self.active_low).lower()}, or null with an external resistor"
            )
        return self


class SafetyInputPin(InputPin):
    """An e-stop or door interlock: normally-closed by default, so a broken wire stops."""

    normally_closed: bool = True


class OutputPin(StrictModel):
    pin: GpioPin
    # true: the lamp or buzzer is on while the pin is high (a driver transistor or a relay
    # board that switches on high); false: on while low (most opto-isolated relay boards).
    active_high: bool = True


_INPUTS = ("estop", "door", "start", "reset")
_OUTPUTS = ("light_green", "light_amber", "light_red", "buzzer")


class GpioConfig(StrictModel):
    estop: SafetyInputPin | None = None
    door: SafetyInputPin | None = None
    start: InputPin | None = None
    reset: InputPin | None = None
    light_green: OutputPin | None = None
    light_amber: OutputPin | None = None
    light_red: OutputPin | None = None
    buzzer: OutputPin | None = None
    # Blinking lamps (attention, e-stop): full on/off cycles per second.
    blink_hz: Annotated[float, Field(gt=0, le=20)] = 2.0

    @model_validator(mode="after")
    def _check_pins_unique(self) -> GpioConfig:
        seen: dict[int, str] = {}
        for key, pin in self.assigned_pins():
            if pin in seen:
                raise ValueError(f"{key} and {seen[pin]} both use GPIO{pin}")
            seen[pin] = key
        return self

    def assigned_pins(self) -> Iterator[tuple[str, int]]:
        """(config key, BCM number) of every configured input and output."""
        for key in (*_INPUTS, *_OUTPUTS):
            entry: InputPin | OutputPin | None = getattr(self, key)
            if entry is not None:
                yield key, entry.pin
