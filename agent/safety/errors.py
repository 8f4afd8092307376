"""Errors of the station's safety I/O."""

from __future__ import annotations

from agent.errors import StationAgentError


class SafetyIoError(StationAgentError):
    """A configured safety input or stack-light output cannot be used.

    Codes: ``gpio_unavailable`` (no GPIO chip or pin library on this machine),
    ``gpio_pin_unusable`` (the pin does not exist, is busy, or cannot take the wiring).
    """

    code = "gpio_error"
