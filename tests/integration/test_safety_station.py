"""Station safety through the whole agent: gpiozero MockFactory pins, GRBL on a pty, real broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from agent.emulators.grbl import GrblEmulator
from agent.garments import knife_gcode, tshirt_pieces
from tests.support.broker import Broker
from tests.support.rig import Rig, after_status_polls, grbl_rig

pytestmark = pytest.mark.timeout(120)

ESTOP, DOOR, START, RESET = 17, 27, 22, 23
GREEN, AMBER, RED, BUZZER = 5, 6, 13, 19
GPIO = {
    "estop": {"pin": ESTOP},  # normally closed, active low, pull-up: a cut wire reads pressed
    "door": {"pin": DOOR},
    "start": {"pin": START},
    "reset": {"pin": RESET},
    "light_green": {"pin": GREEN},
    "light_amber": {"pin": AMBER},
    "light_red": {"pin": RED},
    "buzzer": {"pin": BUZZER},
}


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.reset()
    factory.close()


async def press(factory: MockFactory, pin: int) -> None:
    factory.pin(pin).drive_low()
    await asyncio.sleep(0.1)
    factory.pin(pin).drive_high()


def light(factory: MockFactory) -> dict[str, bool]:
    return {name: bool(factory.pin(p).state) for name, p in
            (("green", GREEN), ("amber", AMBER), ("red", RED))}


@contextlib.asynccontextmanager
async def safety_rig(tmp_path: Path, broker: Broker, pins: MockFactory, *, motion: bool = False,
                     **config: Any) -> AsyncIterator[Rig[GrblEmulator]]:
    """A cutter whose station has the safety inputs above, wired up and reset, ready to cut."""
    async with grbl_rig(tmp_path, broker, latency_s=0.001 if motion else 0.0, motion=motion,
                        pin_factory=pins, config={"gpio": GPIO, **config}) as rig:
        await _wire_up(rig, pins)
        yield rig


async def _wire_up(rig: Rig[GrblEmulator], pins: MockFactory) -> None:
    # The pull-ups read "pressed" until the wiring is connected: a station that boots with its
    # e-stop open stays in e-stop until it is released and reset, like a real one.
    station = rig.station
    await rig.eventually(lambda: station.estop_latched, "the unwired e-stop to latch", 10)
    pins.pin(ESTOP).drive_low()  # NC contacts conduct: e-stop released, door shut
    pins.pin(DOOR).drive_low()
    await rig.eventually(lambda: not station.estop_input_pressed and not station.door_open,
                         "e-stop released and door shut", 10)
    await press(pins, RESET)
    await rig.eventually(lambda: not station.estop_latched, "the latch to clear", 10)
    # After an e-stop, nothing starts until an operator's start: the operator presses it.
    if station.runner.start_hold is not None:
        await press(pins, START)
        await rig.eventually(lambda: station.runner.start_hold is None, "the start", 10)


async def release_estop(rig: Rig[GrblEmulator], pins: MockFactory) -> None:
    """Release the e-stop and wait until the station has read it released."""
    pins.pin(ESTOP).drive_low()
    await rig.eventually(lambda: not rig.station.estop_input_pressed, "e-stop released", 10)


def _program() -> str:
    return knife_gcode(tshirt_pieces(), feed_mm_min=20_000)


async def test_estop_stops_machine_first_and_latches(tmp_path: Path, broker: Broker,
                                                     pins: MockFactory) -> None:
    async with safety_rig(tmp_path, broker, pins, motion=True) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.wait_status("idle")
        assert light(pins) == {"green": True, "amber": False, "red": False}
        await planner.submit({"job_id": "front-e1", "kind": "gcode",
                              "program": _program()})
        await planner.wait_for(lambda: len(emulator.executed) > 30, 30, "cutting")
        assert light(pins)["amber"]
        mark = len(emulator.log)
        pins.pin(ESTOP).drive_high()  # NC contact opens: pressed
        failed = await planner.wait_terminal("front-e1")
        assert failed["event"] == "failed"
        assert failed["detail"]["error"]["code"] == "estop"
        await planner.wait_status("estop")
        # The stop reached the machine before any further program line.
        log = emulator.log
        first_stop = next(i for i in range(mark, len(log))
                          if log[i][0] == "realtime"
                          and log[i][1] in ("soft_reset", "feed_hold"))
        lines_after = [entry for entry in log[first_stop:] if entry[0] == "line"]
        assert lines_after == []
        # Refused until release and reset.
        await planner.submit({"job_id": "back-e1", "kind": "gcode",
                              "program": "G21\nG0 X5 Y5\n"})
        rejected = await planner.wait_event("back-e1", "rejected")
        assert rejected["detail"]["error"]["code"] == "estop_active"
        await planner.command("reset", request_id="x1")
        refused = await planner.wait_for(lambda: [
            e for e in planner.events if e["event"] == "rejected"
            and e["detail"].get("cmd") == "reset"], 10)
        assert refused[0]["detail"]["error"]["code"] == "estop_pressed"
        await release_estop(rig, pins)
        await press(pins, RESET)
        await planner.wait_for(lambda: planner.statuses[-1]["state"] != "estop", 15)
        # The soft reset during motion left GRBL in ALARM:3, and the agent does not unlock
        # it by itself: jobs wait until a person sends `unlock`.
        await planner.wait_status("alarm")
        assert emulator.state == "Alarm"
        await planner.submit({"job_id": "back-e2", "kind": "gcode",
                              "program": "G21\nG0 X5 Y5\n"})
        await planner.wait_event("back-e2", "accepted")
        await after_status_polls(rig, 3)
        assert "started" not in planner.names_for("back-e2")
        await planner.command("unlock", request_id="u1")
        done = await planner.wait_for(lambda: [
            e for e in planner.events if e["event"] == "command_done"
            and e["detail"].get("request_id") == "u1"], 10)
        assert done[0]["detail"]["cmd"] == "unlock"
        # Unlocked, but after an e-stop the job waits for the operator's start.
        waiting = await planner.wait_event("back-e2", "awaiting_operator")
        assert waiting["detail"]["reason"] == "estop_reset"
        await press(pins, START)
        assert (await planner.wait_terminal("back-e2"))["event"] == "succeeded"


async def test_door_pauses_and_blocks_resume_until_closed(tmp_path: Path, broker: Broker,
                                                          pins: MockFactory) -> None:
    async with safety_rig(tmp_path, broker, pins, motion=True) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "front-d1", "kind": "gcode",
                              "program": _program()})
        await planner.wait_for(lambda: len(emulator.executed) > 30, 30, "cutting")
        pins.pin(DOOR).drive_high()  # lid opened
        paused = await planner.wait_event("front-d1", "paused")
        assert paused["detail"]["reason"] == "door_open"
        await planner.wait_status("paused")
        await planner.command("resume", request_id="r1")
        refused = await planner.wait_for(lambda: [
            e for e in planner.events if e["event"] == "rejected"
            and e["detail"].get("request_id") == "r1"], 10)
        assert refused[0]["detail"]["error"]["code"] == "door_open"
        pins.pin(DOOR).drive_low()  # closed: does not resume by itself
        await rig.eventually(lambda: not rig.station.door_open, "the door read shut", 10)
        await after_status_polls(rig, 3)
        assert "resumed" not in planner.names_for("front-d1")
        await planner.command("resume", request_id="r2")
        await planner.wait_event("front-d1", "resumed")
        await planner.command("cancel")
        assert (await planner.wait_terminal("front-d1"))["event"] == "canceled"


async def test_operator_start_holds_every_line(tmp_path: Path, broker: Broker,
                                               pins: MockFactory) -> None:
    async with safety_rig(tmp_path, broker, pins) as rig:
        emulator, planner = rig.emulator, rig.planner
        job: dict[str, Any] = {"job_id": "label-o1", "kind": "gcode",
                               "program": "G21 G90\nG0 X10 Y10\nG1 X50 Y10 F1200\n",
                               "require_operator_start": True}
        await planner.submit(job)
        await planner.wait_event("label-o1", "awaiting_operator")
        await planner.wait_status("awaiting_operator")
        await after_status_polls(rig, 3)
        assert emulator.executed == []
        assert light(pins)["amber"] or light(pins) == {"green": False, "amber": False,
                                                       "red": False}  # blinking
        await press(pins, START)
        assert (await planner.wait_terminal("label-o1"))["event"] == "succeeded"
        assert emulator.executed == ["G21G90", "G0X10Y10", "G1X50Y10F1200", "G4P0"]
        await planner.wait_status("idle")
        assert light(pins) == {"green": True, "amber": False, "red": False}


LABEL = "G21 G90\nG0 X10 Y10\nG1 X50 Y10 F1200\n"


async def _estop_with_a_job_queued(rig: Rig[GrblEmulator], pins: MockFactory) -> None:
    """A long job runs, a label waits behind it; the e-stop is pressed, released and reset."""
    planner, emulator = rig.planner, rig.emulator
    await planner.submit({"job_id": "front-s1", "kind": "gcode", "program": _program()})
    await planner.submit({"job_id": "label-s1", "kind": "gcode", "program": LABEL})
    await planner.wait_for(lambda: len(emulator.executed) > 30, 30, "cutting")
    pins.pin(ESTOP).drive_high()  # pressed
    assert (await planner.wait_terminal("front-s1"))["detail"]["error"]["code"] == "estop"
    await planner.wait_status("estop")
    await release_estop(rig, pins)
    await press(pins, RESET)
    # The stop during motion left GRBL in ALARM:3: a person checks the machine and unlocks.
    await planner.wait_status("alarm")
    await planner.command("unlock", request_id="u-s1")
    await planner.wait_for(lambda: [e for e in planner.events if e["event"] == "command_done"
                                    and e["detail"].get("request_id") == "u-s1"], 10)


async def test_after_estop_and_reset_the_next_job_waits_for_the_start_button(
        tmp_path: Path, broker: Broker, pins: MockFactory) -> None:
    async with safety_rig(tmp_path, broker, pins, motion=True) as rig:
        emulator, planner = rig.emulator, rig.planner
        await _estop_with_a_job_queued(rig, pins)
        waiting = await planner.wait_event("label-s1", "awaiting_operator")
        assert waiting["detail"]["reason"] == "estop_reset"
        assert waiting["detail"]["start_button_required"] is False
        await planner.wait_for(lambda: planner.statuses[-1]["state"] == "awaiting_operator"
                               and planner.statuses[-1]["job_id"] == "label-s1", 10,
                               "status awaiting_operator for label-s1")
        executed = len(emulator.executed)
        await after_status_polls(rig, 3)
        assert "started" not in planner.names_for("label-s1")
        assert len(emulator.executed) == executed
        await press(pins, START)
        assert (await planner.wait_terminal("label-s1"))["event"] == "succeeded"
        assert emulator.executed[executed:] == ["G21G90", "G0X10Y10", "G1X50Y10F1200",
                                                "G4P0"]
        # One start releases the station: the next job runs as usual.
        await planner.submit({"job_id": "label-s2", "kind": "gcode", "program": LABEL})
        assert (await planner.wait_terminal("label-s2"))["event"] == "succeeded"
        assert "awaiting_operator" not in planner.names_for("label-s2")


async def test_the_start_command_releases_the_wait_after_an_estop(
        tmp_path: Path, broker: Broker, pins: MockFactory) -> None:
    async with safety_rig(tmp_path, broker, pins, motion=True) as rig:
        emulator, planner = rig.emulator, rig.planner
        # Start while the e-stop is latched is refused, not remembered.
        pins.pin(ESTOP).drive_high()
        await planner.wait_status("estop")
        await planner.command("start", request_id="st0")
        refused = await planner.wait_for(lambda: [
            e for e in planner.events if e["event"] == "rejected"
            and e["detail"].get("request_id") == "st0"], 10)
        assert refused[0]["detail"]["error"]["code"] == "estop_active"
        await release_estop(rig, pins)
        await press(pins, RESET)
        # Nothing queued, but the station says it waits for an operator's start.
        status = await planner.wait_status("awaiting_operator")
        assert status["job_id"] is None
        await planner.submit({"job_id": "label-s3", "kind": "gcode", "program": LABEL})
        await planner.wait_event("label-s3", "awaiting_operator")
        await after_status_polls(rig, 3)
        assert "started" not in planner.names_for("label-s3")
        assert emulator.executed == []
        await planner.command("start", request_id="st1")
        done = await planner.wait_for(lambda: [
            e for e in planner.events if e["event"] == "command_done"
            and e["detail"].get("request_id") == "st1"], 10)
        assert done[0]["detail"]["cmd"] == "start"
        assert done[0]["detail"]["start_hold_cleared"] is True
        assert (await planner.wait_terminal("label-s3"))["event"] == "succeeded"
        await planner.wait_status("idle")
        # With nothing waiting for a start, the command is answered, never ignored.
        await planner.command("start", request_id="st2")
        refused = await planner.wait_for(lambda: [
            e for e in planner.events if e["event"] == "rejected"
            and e["detail"].get("request_id") == "st2"], 10)
        assert refused[0]["detail"]["error"]["code"] == "not_applicable"


async def test_the_start_command_does_not_replace_a_jobs_start_button(
        tmp_path: Path, broker: Broker, pins: MockFactory) -> None:
    async with safety_rig(tmp_path, broker, pins) as rig:
        planner = rig.planner
        await planner.command("estop", request_id="es1")
        await planner.wait_status("estop")
        await press(pins, RESET)
        await planner.wait_status("awaiting_operator")
        await planner.submit({"job_id": "label-s4", "kind": "gcode", "program": LABEL,
                              "require_operator_start": True})
        waiting = await planner.wait_event("label-s4", "awaiting_operator")
        assert waiting["detail"]["start_button_required"] is True
        await planner.command("start", request_id="st4")
        done = await planner.wait_for(lambda: [
            e for e in planner.events if e["event"] == "command_done"
            and e["detail"].get("request_id") == "st4"], 10)
        assert done[0]["detail"]["start_button_required"] is True
        await after_status_polls(rig, 3)
        assert "started" not in planner.names_for("label-s4")
        await press(pins, START)
        assert (await planner.wait_terminal("label-s4"))["event"] == "succeeded"
        # No e-stop since: a job waiting for the button is not started by the command.
        await planner.submit({"job_id": "label-s5", "kind": "gcode", "program": LABEL,
                              "require_operator_start": True})
        await planner.wait_event("label-s5", "awaiting_operator")
        await planner.command("start", request_id="st5")
        refused = await planner.wait_for(lambda: [
            e for e in planner.events if e["event"] == "rejected"
            and e["detail"].get("request_id") == "st5"], 10)
        assert refused[0]["detail"]["error"]["code"] == "start_button_required"
        assert "started" not in planner.names_for("label-s5")
        await press(pins, START)
        assert (await planner.wait_terminal("label-s5"))["event"] == "succeeded"


async def test_with_the_switch_off_the_next_job_starts_after_reset(
        tmp_path: Path, broker: Broker, pins: MockFactory) -> None:
    async with safety_rig(tmp_path, broker, pins, motion=True,
                          operator={"start_after_estop": False}) as rig:
        planner = rig.planner
        await _estop_with_a_job_queued(rig, pins)
        assert (await planner.wait_terminal("label-s1"))["event"] == "succeeded"
        assert "awaiting_operator" not in planner.names_for("label-s1")


async def test_the_wait_for_a_start_survives_a_restart_of_the_agent(tmp_path: Path,
                                                                    broker: Broker) -> None:
    """A station with no GPIO: e-stop and reset by command, then the agent restarts before
    anybody started the machine. The next job still waits for the start command."""
    async with grbl_rig(tmp_path, broker) as rig:
        planner = rig.planner
        await planner.command("estop", request_id="es-r")
        await planner.wait_status("estop")
        await planner.command("reset", request_id="rs-r")
        await planner.wait_status("awaiting_operator")
        await rig.stop_agent()
        await rig.start_agent()
        await planner.submit({"job_id": "label-r1", "kind": "gcode", "program": LABEL})
        waiting = await planner.wait_event("label-r1", "awaiting_operator")
        assert waiting["detail"]["reason"] == "estop_reset"
        await after_status_polls(rig, 3)
        assert "started" not in planner.names_for("label-r1")
        assert rig.emulator.executed == []
        await planner.command("start", request_id="st-r")
        assert (await planner.wait_terminal("label-r1"))["event"] == "succeeded"
        # Started once: after the next restart jobs run as usual.
        await rig.stop_agent()
        await rig.start_agent()
        await planner.submit({"job_id": "label-r2", "kind": "gcode", "program": LABEL})
        assert (await planner.wait_terminal("label-r2"))["event"] == "succeeded"
        assert "awaiting_operator" not in planner.names_for("label-r2")
