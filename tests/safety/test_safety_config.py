"""The [gpio] section: pin names, wiring defaults, contradictions and duplicates rejected."""

from __future__ import annotations

import tomllib

import pytest
from pydantic import ValidationError

from agent.safety.config import GpioConfig, InputPin, OutputPin

STATION_GPIO = """
blink_hz = 2.0
estop = { pin = "GPIO17" }
door = { pin = 27, debounce_ms = 50 }
start = { pin = "BCM22" }
reset = { pin = 23 }
light_green = { pin = 5 }
light_amber = { pin = 6 }
light_red = { pin = 13 }
buzzer = { pin = 19, active_high = false }
"""


def test_documented_station_wiring_loads() -> None:
    cfg = GpioConfig.model_validate(tomllib.loads(STATION_GPIO))
    assert cfg.estop is not None
    assert cfg.estop.pin == 17
    assert cfg.start is not None
    assert cfg.start.pin == 22
    assert cfg.buzzer is not None
    assert cfg.buzzer.active_high is False
    assert dict(cfg.assigned_pins()) == {
        "estop": 17,
        "door": 27,
        "start": 22,
        "reset": 23,
        "light_green": 5,
        "light_amber": 6,
        "light_red": 13,
        "buzzer": 19,
    }


def test_estop_and_door_default_to_normally_closed_buttons_to_normally_open() -> None:
    cfg = GpioConfig.model_validate(
        {"estop": {"pin": 17}, "door": {"pin": 27}, "start": {"pin": 22}, "reset": {"pin": 23}}
    )
    assert cfg.estop is not None
    assert cfg.door is not None
    assert cfg.start is not None
    assert cfg.reset is not None
    assert cfg.estop.normally_closed
    assert cfg.door.normally_closed
    assert not cfg.start.normally_closed
    assert not cfg.reset.normally_closed


@pytest.mark.parametrize(("active_low", "expected_pull_up"), [(True, True), (False, False)])
def test_pull_resistor_defaults_to_the_open_contact_level(
    active_low: bool, expected_pull_up: bool
) -> None:
    pin = InputPin.model_validate({"pin": 22, "active_low": active_low})
    assert pin.pull_up is expected_pull_up


def test_no_internal_pull_for_an_external_resistor() -> None:
    pin = InputPin.model_validate({"pin": 22, "active_low": False, "pull_up": None})
    assert pin.pull_up is None


@pytest.mark.parametrize("active_low", [True, False])
def test_pull_resistor_that_hides_the_contact_is_rejected(active_low: bool) -> None:
    with pytest.raises(ValidationError, match="contradicts"):
        InputPin.model_validate({"pin": 22, "active_low": active_low, "pull_up": not active_low})


@pytest.mark.parametrize(("spec", "number"), [(0, 0), (53, 53), ("GPIO4", 4), ("gpio26", 26)])
def test_pin_numbers_and_names(spec: int | str, number: int) -> None:
    assert OutputPin.model_validate({"pin": spec}).pin == number


@pytest.mark.parametrize("spec", [-1, 54, "GPIO54", "BOARD11", "pin17", "17a", True, 2.5])
def test_bad_pins_are_rejected_naming_the_key(spec: object) -> None:
    with pytest.raises(ValidationError) as info:
        GpioConfig.model_validate({"light_red": {"pin": spec}})
    assert info.value.errors()[0]["loc"][:2] == ("light_red", "pin")


def test_one_pin_used_twice_is_rejected_naming_both_keys() -> None:
    with pytest.raises(ValidationError, match=r"buzzer and estop both use GPIO17"):
        GpioConfig.model_validate({"estop": {"pin": 17}, "buzzer": {"pin": "GPIO17"}})


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError, match="debounce"):
        GpioConfig.model_validate({"estop": {"pin": 17, "debounce": 20}})
    with pytest.raises(ValidationError, match="light_blue"):
        GpioConfig.model_validate({"light_blue": {"pin": 16}})


@pytest.mark.parametrize("blink_hz", [0, -1, 21])
def test_blink_rate_must_be_sensible(blink_hz: float) -> None:
    with pytest.raises(ValidationError, match="blink_hz"):
        GpioConfig.model_validate({"blink_hz": blink_hz})


def test_debounce_bounds() -> None:
    with pytest.raises(ValidationError, match="debounce_ms"):
        InputPin.model_validate({"pin": 22, "debounce_ms": 5000})
    assert InputPin.model_validate({"pin": 22, "debounce_ms": 0}).debounce_ms == 0


def test_config_is_frozen() -> None:
    cfg = GpioConfig.model_validate({"estop": {"pin": 17}})
    with pytest.raises(ValidationError):
        cfg.blink_hz = 5.0  # type: ignore[misc]
