"""SafetyPanel on mock pins: e-stop wiring, door, buttons, debounce, thread hand-off, start-up.

Pins are driven the way the wiring would: an NC e-stop on GPIO17 to ground with the internal
pull-up holds the line low while released; pressing it (or cutting the cable) lets the pull-up
take the line high.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from agent.safety import GpioConfig, SafetyIoError, SafetyPanel
from tests.safety.helpers import (
    RecordingListener,
    break_wire,
    close_contact,
    open_contact,
    settle,
    until,
)

ESTOP, DOOR, START, RESET = 17, 27, 22, 23
# Long enough that a burst of edges driven from the test always lands inside one window.
DEBOUNCE_MS = 100
QUIET_S = 3 * DEBOUNCE_MS / 1000


def gpio(**inputs: dict[str, object]) -> GpioConfig:
    for spec in inputs.values():
        spec.setdefault("debounce_ms", DEBOUNCE_MS)
    return GpioConfig.model_validate(inputs)


@contextmanager
def opened(
    config: GpioConfig, factory: MockFactory, listener: RecordingListener
) -> Iterator[SafetyPanel]:
    panel = SafetyPanel(config, factory, asyncio.get_running_loop(), listener)
    try:
        yield panel
    finally:
        panel.close()


def mock_pin(factory: MockFactory, number: int) -> MockPin:
    pin: MockPin = factory.pin(number)
    return pin


# -- e-stop ----------------------------------------------------------------------------------


async def test_nc_estop_press_and_release(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    with opened(gpio(estop={"pin": ESTOP}), pin_factory, listener) as panel:
        pin = mock_pin(pin_factory, ESTOP)
        close_contact(pin)  # wired and released before the loop runs again: nothing to report
        await settle(QUIET_S)
        assert listener.events == []
        assert not panel.estop_pressed

        open_contact(pin)  # pressing an NC e-stop opens its contact
        await until(lambda: listener.events == [("estop", True)], "e-stop press")
        assert panel.estop_pressed

        close_contact(pin)
        await until(lambda: listener.events[-1:] == [("estop", False)], "e-stop release")
        assert not panel.estop_pressed
        assert listener.events == [("estop", True), ("estop", False)]


async def test_no_estop_press_and_release(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    config = gpio(estop={"pin": ESTOP, "normally_closed": False})
    with opened(config, pin_factory, listener) as panel:
        pin = mock_pin(pin_factory, ESTOP)
        await settle(QUIET_S)
        assert listener.events == []  # open contact at start-up: released
        assert not panel.estop_pressed

        close_contact(pin)
        await until(lambda: listener.events == [("estop", True)], "e-stop press")
        assert panel.estop_pressed

        open_contact(pin)
        await until(lambda: listener.events[-1:] == [("estop", False)], "e-stop release")
        assert not panel.estop_pressed


async def test_active_high_estop_with_external_resistor(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    config = gpio(estop={"pin": ESTOP, "active_low": False, "pull_up": None})
    pin = mock_pin(pin_factory, ESTOP)
    pin.drive_high()  # NC contact to 3.3 V, closed: released
    with opened(config, pin_factory, listener) as panel:
        await settle(QUIET_S)
        assert listener.events == []
        assert pin.pull == "floating"
        open_contact(pin, active_low=False)
        await until(lambda: listener.events == [("estop", True)], "e-stop press")
        assert panel.estop_pressed


async def test_broken_wire_on_nc_estop_reads_pressed(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    with opened(gpio(estop={"pin": ESTOP}), pin_factory, listener) as panel:
        pin = mock_pin(pin_factory, ESTOP)
        close_contact(pin)
        await settle(QUIET_S)
        assert not panel.estop_pressed

        break_wire(pin)
        await until(lambda: listener.events == [("estop", True)], "broken wire as e-stop")
        assert panel.estop_pressed


async def test_unwired_nc_estop_at_startup_is_reported_pressed(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    # Nothing connected at all: only the pull-up holds the line, exactly like a cut cable.
    with opened(gpio(estop={"pin": ESTOP}), pin_factory, listener) as panel:
        assert panel.estop_pressed
        await until(lambda: listener.events == [("estop", True)], "e-stop at start-up")


async def test_estop_held_at_startup_is_reported_once(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    config = gpio(estop={"pin": ESTOP, "active_low": False, "pull_up": None})
    pin = mock_pin(pin_factory, ESTOP)
    pin.drive_low()  # the NC contact is already open when the agent starts: pressed
    with opened(config, pin_factory, listener) as panel:
        assert panel.estop_pressed
        await until(lambda: listener.events == [("estop", True)], "e-stop at start-up")
        await settle(QUIET_S)
        assert listener.events == [("estop", True)]


async def test_estop_press_is_reported_before_debounce_time(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    """The press takes effect without waiting out the debounce window (set very long here)."""
    config = gpio(estop={"pin": ESTOP, "debounce_ms": 1000})
    with opened(config, pin_factory, listener):
        pin = mock_pin(pin_factory, ESTOP)
        close_contact(pin)
        await settle(0.02)
        open_contact(pin)
        # Two loop iterations: the hand-off callback, and nothing else is waited for.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert listener.events == [("estop", True)]


async def test_estop_reads_pressed_until_its_release_is_reported(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    config = gpio(estop={"pin": ESTOP, "debounce_ms": 1000})
    with opened(config, pin_factory, listener) as panel:
        pin = mock_pin(pin_factory, ESTOP)
        await until(lambda: listener.events == [("estop", True)], "e-stop at start-up")
        close_contact(pin)  # released, but not yet for the debounce time
        await settle(0.05)
        assert panel.estop_pressed
        await until(lambda: listener.events[-1:] == [("estop", False)], "e-stop release")
        assert not panel.estop_pressed


async def test_estop_chatter_on_press_gives_one_press_and_no_release(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    with opened(gpio(estop={"pin": ESTOP}), pin_factory, listener) as panel:
        pin = mock_pin(pin_factory, ESTOP)
        close_contact(pin)
        await settle(QUIET_S)
        # The contact bounces as the mushroom head goes down, then stays open.
        for _ in range(5):
            open_contact(pin)
            close_contact(pin)
        open_contact(pin)
        await until(lambda: listener.events != [], "e-stop press")
        await settle(QUIET_S)
        assert listener.events == [("estop", True)]
        assert panel.estop_pressed


async def test_estop_release_glitch_shorter_than_debounce_is_ignored(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    with opened(gpio(estop={"pin": ESTOP}), pin_factory, listener):
        pin = mock_pin(pin_factory, ESTOP)
        await until(lambda: listener.events == [("estop", True)], "e-stop at start-up")
        close_contact(pin)  # a momentary "released" while the e-stop stays pressed
        open_contact(pin)
        await settle(QUIET_S)
        assert listener.events == [("estop", True)]


async def test_bouncing_estop_release_is_reported_once(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    with opened(gpio(estop={"pin": ESTOP}), pin_factory, listener) as panel:
        pin = mock_pin(pin_factory, ESTOP)
        await until(lambda: listener.events == [("estop", True)], "e-stop at start-up")
        for _ in range(5):
            close_contact(pin)
            open_contact(pin)
        close_contact(pin)
        await until(lambda: len(listener.events) == 2, "e-stop release")
        await settle(QUIET_S)
        assert listener.events == [("estop", True), ("estop", False)]
        assert not panel.estop_pressed


async def test_without_debounce_every_change_is_reported(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    config = gpio(estop={"pin": ESTOP, "normally_closed": False, "debounce_ms": 0})
    with opened(config, pin_factory, listener):
        pin = mock_pin(pin_factory, ESTOP)
        for _ in range(3):
            close_contact(pin)
            open_contact(pin)
        await until(lambda: len(listener.events) == 6, "six e-stop changes")
        assert listener.events == [("estop", True), ("estop", False)] * 3


# -- door ------------------------------------------------------------------------------------


async def test_door_open_and_close(pin_factory: MockFactory, listener: RecordingListener) -> None:
    with opened(gpio(door={"pin": DOOR}), pin_factory, listener) as panel:
        pin = mock_pin(pin_factory, DOOR)
        close_contact(pin)  # NC interlock: the closed door holds the contact closed
        await settle(QUIET_S)
        assert listener.events == []
        assert not panel.door_open

        open_contact(pin)
        await until(lambda: listener.events == [("door", True)], "door opened")
        assert panel.door_open

        close_contact(pin)
        await until(lambda: listener.events[-1:] == [("door", False)], "door closed")
        assert not panel.door_open


async def test_door_open_at_startup_is_reported(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    with opened(gpio(door={"pin": DOOR}), pin_factory, listener) as panel:
        assert panel.door_open
        await until(lambda: listener.events == [("door", True)], "door open at start-up")


async def test_unconfigured_inputs_read_safe_and_stay_silent(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    with opened(GpioConfig(), pin_factory, listener) as panel:
        await settle(QUIET_S)
        assert not panel.estop_pressed
        assert not panel.door_open
        assert listener.events == []


# -- buttons ---------------------------------------------------------------------------------


async def test_start_and_reset_presses_reported_releases_not(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    config = gpio(start={"pin": START}, reset={"pin": RESET})
    with opened(config, pin_factory, listener):
        start, reset = mock_pin(pin_factory, START), mock_pin(pin_factory, RESET)
        close_contact(start)
        await until(lambda: listener.events == [("start", None)], "start pressed")
        open_contact(start)
        close_contact(reset)
        await until(lambda: len(listener.events) == 2, "reset pressed")
        open_contact(reset)
        close_contact(start)
        await until(lambda: len(listener.events) == 3, "second start press")
        open_contact(start)
        await settle(QUIET_S)
        assert listener.events == [("start", None), ("reset", None), ("start", None)]


async def test_bouncing_start_button_gives_one_press(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    with opened(gpio(start={"pin": START}), pin_factory, listener):
        pin = mock_pin(pin_factory, START)
        for _ in range(4):
            close_contact(pin)
            open_contact(pin)
        close_contact(pin)
        await until(lambda: listener.events != [], "start pressed")
        # ... and the release bounces too.
        for _ in range(4):
            open_contact(pin)
            close_contact(pin)
        open_contact(pin)
        await settle(QUIET_S)
        assert listener.events == [("start", None)]


async def test_noise_spike_on_start_button_is_not_a_press(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    with opened(gpio(start={"pin": START}), pin_factory, listener):
        pin = mock_pin(pin_factory, START)
        close_contact(pin)
        open_contact(pin)
        await settle(QUIET_S)
        assert listener.events == []


async def test_button_held_at_startup_is_not_a_press(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    config = gpio(start={"pin": START, "active_low": False, "pull_up": None})
    pin = mock_pin(pin_factory, START)
    pin.drive_high()  # held down while the agent starts
    with opened(config, pin_factory, listener):
        await settle(QUIET_S)
        assert listener.events == []
        open_contact(pin, active_low=False)
        await settle(QUIET_S)
        close_contact(pin, active_low=False)
        await until(lambda: listener.events == [("start", None)], "start pressed")


# -- threads and lifetime --------------------------------------------------------------------


async def test_callbacks_run_on_the_event_loop_thread(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    config = gpio(estop={"pin": ESTOP}, door={"pin": DOOR}, start={"pin": START})
    with opened(config, pin_factory, listener):
        estop, door = mock_pin(pin_factory, ESTOP), mock_pin(pin_factory, DOOR)
        start = mock_pin(pin_factory, START)
        close_contact(estop)
        close_contact(door)
        await settle(QUIET_S)
        driver_thread: list[int] = []

        def operator() -> None:
            # Runs on its own thread, as lgpio's callback thread does on a Pi.
            driver_thread.append(threading.get_ident())
            open_contact(estop)
            open_contact(door)
            close_contact(start)

        thread = threading.Thread(target=operator)
        thread.start()
        thread.join()
        await until(lambda: len(listener.events) == 3, "three events")
        assert sorted(listener.events, key=str) == sorted(
            [("estop", True), ("door", True), ("start", None)], key=str
        )
        assert listener.threads == {threading.get_ident()}
        assert driver_thread[0] not in listener.threads


async def test_close_stops_reporting_and_releases_pins(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    config = gpio(estop={"pin": ESTOP}, start={"pin": START})
    panel = SafetyPanel(config, pin_factory, asyncio.get_running_loop(), listener)
    estop, start = mock_pin(pin_factory, ESTOP), mock_pin(pin_factory, START)
    close_contact(estop)
    await settle(QUIET_S)
    open_contact(estop)  # the edge is queued for the loop, then the panel closes
    close_contact(start)
    panel.close()
    panel.close()
    await settle(QUIET_S)
    assert listener.events == []
    # The same pins can be taken again at once (a restart of the safety I/O).
    with opened(config, pin_factory, listener) as again:
        assert again.estop_pressed


async def test_unusable_pin_is_a_clear_error_and_leaks_nothing(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    # GPIO2 has a fixed pull-up on the Pi; an active-high contact needs a pull-down.
    config = gpio(estop={"pin": ESTOP}, start={"pin": 2, "active_low": False})
    with pytest.raises(SafetyIoError, match=r"gpio\.start: cannot use GPIO2") as info:
        SafetyPanel(config, pin_factory, asyncio.get_running_loop(), listener)
    assert info.value.code == "gpio_pin_unusable"
    # The e-stop opened before the failure was released again.
    with opened(gpio(estop={"pin": ESTOP}), pin_factory, listener) as panel:
        assert panel.estop_pressed


async def test_pin_held_by_another_device_is_a_clear_error(
    pin_factory: MockFactory, listener: RecordingListener
) -> None:
    with opened(gpio(estop={"pin": ESTOP}), pin_factory, listener):
        with pytest.raises(SafetyIoError, match=r"gpio\.estop: cannot use GPIO17") as info:
            SafetyPanel(
                gpio(estop={"pin": ESTOP}), pin_factory, asyncio.get_running_loop(), listener
            )
        assert info.value.code == "gpio_pin_unusable"
