"""StackLight on mock pins: which lamp each station state lights, blinking, beeps, release."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from agent.safety import GpioConfig, LightState, SafetyIoError, SafetyPanel, StackLight
from tests.safety.helpers import close_contact, open_contact, toggles, until
from tests.support.eventually import eventually_sync

GREEN, AMBER, RED, BUZZER = 5, 6, 13, 19
BLINK_HZ = 10.0  # fast, so a test sees several blinks in well under a second
WAIT_S = 5.0


def tower(*, active_high: bool = True) -> GpioConfig:
    return GpioConfig.model_validate(
        {
            "light_green": {"pin": GREEN, "active_high": active_high},
            "light_amber": {"pin": AMBER, "active_high": active_high},
            "light_red": {"pin": RED, "active_high": active_high},
            "buzzer": {"pin": BUZZER, "active_high": active_high},
            "blink_hz": BLINK_HZ,
        }
    )


def pins(factory: MockFactory) -> dict[str, MockPin]:
    return {
        "green": factory.pin(GREEN),
        "amber": factory.pin(AMBER),
        "red": factory.pin(RED),
        "buzzer": factory.pin(BUZZER),
    }


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    """The lamps are driven by gpiozero's threads: poll them from here, bounded."""
    eventually_sync(predicate, what=what, timeout=WAIT_S, poll_s=0.005)


def lit(factory: MockFactory, *, active_high: bool = True) -> dict[str, bool]:
    return {name: bool(pin.state) == active_high for name, pin in pins(factory).items()}


STEADY = {
    LightState.IDLE: {"green": True, "amber": False, "red": False},
    LightState.RUNNING: {"green": False, "amber": True, "red": False},
    LightState.FAULT: {"green": False, "amber": False, "red": True},
}


def test_everything_is_dark_until_the_first_state(pin_factory: MockFactory) -> None:
    with StackLight(tower(), pin_factory) as light:
        assert light.state is None
        assert lit(pin_factory) == {"green": False, "amber": False, "red": False, "buzzer": False}


@pytest.mark.parametrize("active_high", [True, False])
@pytest.mark.parametrize("state", list(STEADY))
def test_steady_states_light_one_lamp(
    pin_factory: MockFactory, state: LightState, active_high: bool
) -> None:
    with StackLight(tower(active_high=active_high), pin_factory) as light:
        light.show(state)
        assert light.state is state
        lamps = lit(pin_factory, active_high=active_high)
        del lamps["buzzer"]
        assert lamps == STEADY[state]


@pytest.mark.parametrize(
    ("state", "blinking"), [(LightState.ATTENTION, "amber"), (LightState.ESTOP, "red")]
)
def test_blinking_states_blink_one_lamp_and_leave_the_others_dark(
    pin_factory: MockFactory, state: LightState, blinking: str
) -> None:
    with StackLight(tower(), pin_factory) as light:
        light.show(LightState.IDLE)
        light.show(state)
        lamp = pins(pin_factory)[blinking]
        lamp.clear_states()
        wait_for(lambda: toggles(lamp) >= 4, f"{blinking} to blink")
        others = {"green", "amber", "red"} - {blinking}
        assert not any(lit(pin_factory)[name] for name in others)


def test_leaving_a_blinking_state_stops_the_blinking(pin_factory: MockFactory) -> None:
    with StackLight(tower(), pin_factory) as light:
        amber = pins(pin_factory)["amber"]
        light.show(LightState.ATTENTION)
        wait_for(lambda: toggles(amber) >= 2, "amber to blink")
        light.show(LightState.RUNNING)
        amber.clear_states()
        time.sleep(4 / BLINK_HZ)  # several blink periods
        assert toggles(amber) == 0
        assert lit(pin_factory)["amber"]


def test_fault_sounds_three_short_beeps_then_silence(pin_factory: MockFactory) -> None:
    with StackLight(tower(), pin_factory) as light:
        buzzer = pins(pin_factory)["buzzer"]
        buzzer.clear_states()
        light.show(LightState.FAULT)
        wait_for(lambda: toggles(buzzer) >= 6, "three beeps")
        time.sleep(0.5)
        assert [s.state for s in buzzer.states] == [False, True, False, True, False, True, False]
        assert lit(pin_factory)["red"]


def test_estop_sounds_one_long_beep_then_silence(pin_factory: MockFactory) -> None:
    with StackLight(tower(), pin_factory) as light:
        buzzer = pins(pin_factory)["buzzer"]
        buzzer.clear_states()
        light.show(LightState.ESTOP)
        wait_for(lambda: toggles(buzzer) >= 2, "the beep to end")
        assert [s.state for s in buzzer.states] == [False, True, False]


def test_showing_the_same_state_again_does_not_beep_again(pin_factory: MockFactory) -> None:
    with StackLight(tower(), pin_factory) as light:
        buzzer = pins(pin_factory)["buzzer"]
        light.show(LightState.ESTOP)
        wait_for(lambda: toggles(buzzer) >= 2, "the beep to end")
        buzzer.clear_states()
        light.show(LightState.ESTOP)
        time.sleep(0.2)
        assert toggles(buzzer) == 0


@pytest.mark.parametrize("state", [LightState.IDLE, LightState.RUNNING, LightState.ATTENTION])
def test_calm_states_silence_a_sounding_buzzer(pin_factory: MockFactory, state: LightState) -> None:
    with StackLight(tower(), pin_factory) as light:
        light.show(LightState.ESTOP)
        wait_for(lambda: lit(pin_factory)["buzzer"], "the beep to start")
        light.show(state)
        assert not lit(pin_factory)["buzzer"]


def test_close_turns_everything_off_and_releases_the_pins(pin_factory: MockFactory) -> None:
    light = StackLight(tower(), pin_factory)
    light.show(LightState.FAULT)
    light.close()
    light.close()
    assert light.state is None
    assert lit(pin_factory) == {"green": False, "amber": False, "red": False, "buzzer": False}
    with StackLight(tower(), pin_factory) as again:
        again.show(LightState.IDLE)
        assert lit(pin_factory)["green"]


def test_missing_lamps_are_skipped(pin_factory: MockFactory) -> None:
    config = GpioConfig.model_validate({"light_red": {"pin": RED}, "blink_hz": BLINK_HZ})
    with StackLight(config, pin_factory) as light:
        for state in LightState:
            light.show(state)
        red = pin_factory.pin(RED)
        wait_for(lambda: toggles(red) >= 2, "red to blink for the e-stop")


def test_unusable_output_pin_is_a_clear_error(pin_factory: MockFactory) -> None:
    config = GpioConfig.model_validate({"light_green": {"pin": GREEN}, "light_red": {"pin": 40}})
    with pytest.raises(SafetyIoError, match=r"gpio\.light_red: cannot use GPIO40") as info:
        StackLight(config, pin_factory)
    assert info.value.code == "gpio_pin_unusable"


class _LightFollowsEstop:
    """The shape of the runner's wiring: station state drives the stack light."""

    def __init__(self, light: StackLight) -> None:
        self.light = light

    def on_estop(self, pressed: bool) -> None:
        self.light.show(LightState.ESTOP if pressed else LightState.ATTENTION)

    def on_door(self, open: bool) -> None:
        pass

    def on_start_pressed(self) -> None:
        pass

    def on_reset_pressed(self) -> None:
        self.light.show(LightState.IDLE)


async def test_panel_and_light_share_one_pin_factory(pin_factory: MockFactory) -> None:
    config = GpioConfig.model_validate(
        {
            "estop": {"pin": 17},
            "reset": {"pin": 23},
            "light_green": {"pin": GREEN},
            "light_red": {"pin": RED},
            "blink_hz": BLINK_HZ,
        }
    )
    with StackLight(config, pin_factory) as light:
        light.show(LightState.IDLE)
        follower = _LightFollowsEstop(light)
        with SafetyPanel(config, pin_factory, asyncio.get_running_loop(), follower):
            # Unwired NC e-stop at start-up: pressed.
            await until(lambda: light.state is LightState.ESTOP, "e-stop light")
            red = pin_factory.pin(RED)
            await until(lambda: toggles(red) >= 3, "red to blink")
            assert not lit(pin_factory)["green"]
            close_contact(pin_factory.pin(17))
            await until(lambda: light.state is LightState.ATTENTION, "released e-stop light")
            reset = pin_factory.pin(23)
            close_contact(reset)
            await until(lambda: light.state is LightState.IDLE, "reset to idle")
            open_contact(reset)
            assert lit(pin_factory)["green"]
            assert not lit(pin_factory)["red"]
