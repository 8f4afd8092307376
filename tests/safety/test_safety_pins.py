"""Opening the Pi's real pin factory: without lgpio or a GPIO chip, a clear coded error."""

from __future__ import annotations

import importlib.util

import pytest
from gpiozero import Device

from agent.safety import SafetyIoError, hardware_pin_factory


@pytest.mark.skipif(
    importlib.util.find_spec("lgpio") is not None, reason="lgpio installed: GPIO may be present"
)
def test_hardware_factory_without_lgpio_is_a_clear_error() -> None:
    before = Device.pin_factory
    with pytest.raises(SafetyIoError, match="no GPIO available") as info:
        hardware_pin_factory()
    assert info.value.code == "gpio_unavailable"
    assert Device.pin_factory is before
