"""Station safety through the whole agent: gpiozero MockFactory pins, GRBL on a pty, real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from agent.aio import wait_within
from agent.emulators.grbl import GrblEmulator
from agent.emulators.pty import PtyEndpoint
from agent.garments import knife_gcode, tshirt_pieces
from tests.support.broker import Broker
from tests.support.planner import Planner
from tests.support.station import RunningAgent, agent_config, background, running_agent

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


async def _start(tmp_path: Path, broker: Broker, link: Path, pins: MockFactory,
                 **overrides: Any) -> RunningAgent:
    config = agent_config(tmp_path, broker, link, gpio=GPIO, **overrides)
    agent = RunningAgent(config)
    agent_task = asyncio.create_task(_run(agent, pins))
    await wait_within(agent._ready.wait(), 20)
    agent.task = agent_task
    await agent.wait_device_online()
    # The pull-ups read "pressed" until the wiring is connected: a station that boots with its
    # e-stop open stays in e-stop until it is released and reset, like a real one.
    station = agent.agent.station  # type: ignore[union-attr]
    await _until(lambda: station.estop_latched)
    pins.pin(ESTOP).drive_low()  # NC contacts conduct: e-stop released, door shut
    pins.pin(DOOR).drive_low()
    await _until(lambda: not station.estop_input_pressed and not station.door_open)
    await press(pins, RESET)
    await _until(lambda: not station.estop_latched)
    # After an e-stop, nothing starts until an operator's start: the operator presses it.
    if station.runner.start_hold is not None:
        await press(pins, START)
        await _until(lambda: station.runner.start_hold is None)
    return agent


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _run(agent: RunningAgent, pins: MockFactory) -> None:
    from agent.app import run_agent

    await run_agent(agent.config, stop=agent.stop, on_ready=agent._on_ready, pin_factory=pins)


def _program() -> str:
    return knife_gcode(tshirt_pieces(), feed_mm_min=20_000)


async def test_estop_stops_machine_first_and_latches(tmp_path: Path, broker: Broker,
                                                     pins: MockFactory) -> None:
    link = tmp_path / "ttyGRBL"
    async with PtyEndpoint(link, baud=115_200, latency_s=0.001) as endpoint:
        emulator = GrblEmulator(endpoint, motion=True)
        async with background(emulator.run, "grbl"), Planner(broker.host, broker.port) as planner:
            agent = await _start(tmp_path, broker, link, pins)
            try:
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
                pins.pin(ESTOP).drive_low()  # released
                await asyncio.sleep(0.2)
                await press(pins, RESET)
                await planner.wait_for(lambda: planner.statuses[-1]["state"] != "estop", 15)
                # The soft reset during motion left GRBL in ALARM:3, and the agent does not unlock
                # it by itself: jobs wait until a person sends `unlock`.
                await planner.wait_status("alarm")
                assert emulator.state == "Alarm"
                await planner.submit({"job_id": "back-e2", "kind": "gcode",
                                      "program": "G21\nG0 X5 Y5\n"})
                await planner.wait_event("back-e2", "accepted")
                await asyncio.sleep(0.5)
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
            finally:
                await agent.shutdown()


async def test_door_pauses_and_blocks_resume_until_closed(tmp_path: Path, broker: Broker,
                                                          pins: MockFactory) -> None:
    link = tmp_path / "ttyGRBL"
    async with PtyEndpoint(link, baud=115_200, latency_s=0.001) as endpoint:
        emulator = GrblEmulator(endpoint, motion=True)
        async with background(emulator.run, "grbl"), Planner(broker.host, broker.port) as planner:
            agent = await _start(tmp_path, broker, link, pins)
            try:
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
                await asyncio.sleep(0.5)
                assert "resumed" not in planner.names_for("front-d1")
                await planner.command("resume", request_id="r2")
                await planner.wait_event("front-d1", "resumed")
                await planner.command("cancel")
                assert (await planner.wait_terminal("front-d1"))["event"] == "canceled"
            finally:
                await agent.shutdown()


async def test_operator_start_holds_every_line(tmp_path: Path, broker: Broker,
                                               pins: MockFactory) -> None:
    link = tmp_path / "ttyGRBL"
    async with PtyEndpoint(link, baud=115_200) as endpoint:
        emulator = GrblEmulator(endpoint)
        async with background(emulator.run, "grbl"), Planner(broker.host, broker.port) as planner:
            agent = await _start(tmp_path, broker, link, pins)
            try:
                job: dict[str, Any] = {"job_id": "label-o1", "kind": "gcode",
                                       "program": "G21 G90\nG0 X10 Y10\nG1 X50 Y10 F1200\n",
                                       "require_operator_start": True}
                await planner.submit(job)
                await planner.wait_event("label-o1", "awaiting_operator")
                await planner.wait_status("awaiting_operator")
                await asyncio.sleep(0.5)
                assert emulator.executed == []
                assert light(pins)["amber"] or light(pins) == {"green": False, "amber": False,
                                                               "red": False}  # blinking
                await press(pins, START)
                assert (await planner.wait_terminal("label-o1"))["event"] == "succeeded"
                assert emulator.executed == ["G21G90", "G0X10Y10", "G1X50Y10F1200", "G4P0"]
                await planner.wait_status("idle")
                assert light(pins) == {"green": True, "amber": False, "red": False}
            finally:
                await agent.shutdown()


LABEL = "G21 G90\nG0 X10 Y10\nG1 X50 Y10 F1200\n"


async def _estop_with_a_job_queued(planner: Planner, pins: MockFactory,
                                   emulator: GrblEmulator) -> None:
    """A long job runs, a label waits behind it; the e-stop is pressed, released and reset."""
    await planner.submit({"job_id": "front-s1", "kind": "gcode", "program": _program()})
    await planner.submit({"job_id": "label-s1", "kind": "gcode", "program": LABEL})
    await planner.wait_for(lambda: len(emulator.executed) > 30, 30, "cutting")
    pins.pin(ESTOP).drive_high()  # pressed
    assert (await planner.wait_terminal("front-s1"))["detail"]["error"]["code"] == "estop"
    await planner.wait_status("estop")
    pins.pin(ESTOP).drive_low()  # released
    await asyncio.sleep(0.2)
    await press(pins, RESET)
    # The stop during motion left GRBL in ALARM:3: a person checks the machine and unlocks.
    await planner.wait_status("alarm")
    await planner.command("unlock", request_id="u-s1")
    await planner.wait_for(lambda: [e for e in planner.events if e["event"] == "command_done"
                                    and e["detail"].get("request_id") == "u-s1"], 10)


async def test_after_estop_and_reset_the_next_job_waits_for_the_start_button(
        tmp_path: Path, broker: Broker, pins: MockFactory) -> None:
    link = tmp_path / "ttyGRBL"
    async with PtyEndpoint(link, baud=115_200, latency_s=0.001) as endpoint:
        emulator = GrblEmulator(endpoint, motion=True)
        async with background(emulator.run, "grbl"), Planner(broker.host, broker.port) as planner:
            agent = await _start(tmp_path, broker, link, pins)
            try:
                await _estop_with_a_job_queued(planner, pins, emulator)
                waiting = await planner.wait_event("label-s1", "awaiting_operator")
                assert waiting["detail"]["reason"] == "estop_reset"
                assert waiting["detail"]["start_button_required"] is False
                await planner.wait_for(lambda: planner.statuses[-1]["state"] == "awaiting_operator"
                                       and planner.statuses[-1]["job_id"] == "label-s1", 10,
                                       "status awaiting_operator for label-s1")
                executed = len(emulator.executed)
                await asyncio.sleep(0.5)
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
            finally:
                await agent.shutdown()


async def test_the_start_command_releases_the_wait_after_an_estop(
        tmp_path: Path, broker: Broker, pins: MockFactory) -> None:
    link = tmp_path / "ttyGRBL"
    async with PtyEndpoint(link, baud=115_200, latency_s=0.001) as endpoint:
        emulator = GrblEmulator(endpoint, motion=True)
        async with background(emulator.run, "grbl"), Planner(broker.host, broker.port) as planner:
            agent = await _start(tmp_path, broker, link, pins)
            try:
                # Start while the e-stop is latched is refused, not remembered.
                pins.pin(ESTOP).drive_high()
                await planner.wait_status("estop")
                await planner.command("start", request_id="st0")
                refused = await planner.wait_for(lambda: [
                    e for e in planner.events if e["event"] == "rejected"
                    and e["detail"].get("request_id") == "st0"], 10)
                assert refused[0]["detail"]["error"]["code"] == "estop_active"
                pins.pin(ESTOP).drive_low()
                await asyncio.sleep(0.2)
                await press(pins, RESET)
                # Nothing queued, but the station says it waits for an operator's start.
                status = await planner.wait_status("awaiting_operator")
                assert status["job_id"] is None
                await planner.submit({"job_id": "label-s3", "kind": "gcode", "program": LABEL})
                await planner.wait_event("label-s3", "awaiting_operator")
                await asyncio.sleep(0.5)
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
            finally:
                await agent.shutdown()


async def test_the_start_command_does_not_replace_a_jobs_start_button(
        tmp_path: Path, broker: Broker, pins: MockFactory) -> None:
    link = tmp_path / "ttyGRBL"
    async with PtyEndpoint(link, baud=115_200) as endpoint:
        emulator = GrblEmulator(endpoint)
        async with background(emulator.run, "grbl"), Planner(broker.host, broker.port) as planner:
            agent = await _start(tmp_path, broker, link, pins)
            try:
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
                await asyncio.sleep(0.5)
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
            finally:
                await agent.shutdown()


async def test_with_the_switch_off_the_next_job_starts_after_reset(
        tmp_path: Path, broker: Broker, pins: MockFactory) -> None:
    link = tmp_path / "ttyGRBL"
    async with PtyEndpoint(link, baud=115_200, latency_s=0.001) as endpoint:
        emulator = GrblEmulator(endpoint, motion=True)
        async with background(emulator.run, "grbl"), Planner(broker.host, broker.port) as planner:
            agent = await _start(tmp_path, broker, link, pins,
                                 operator={"start_after_estop": False})
            try:
                await _estop_with_a_job_queued(planner, pins, emulator)
                assert (await planner.wait_terminal("label-s1"))["event"] == "succeeded"
                assert "awaiting_operator" not in planner.names_for("label-s1")
            finally:
                await agent.shutdown()


async def test_the_wait_for_a_start_survives_a_restart_of_the_agent(tmp_path: Path,
                                                                    broker: Broker) -> None:
    """A station with no GPIO: e-stop and reset by command, then the agent restarts before
    anybody started the machine. The next job still waits for the start command."""
    link = tmp_path / "ttyGRBL"
    config = agent_config(tmp_path, broker, link)
    async with PtyEndpoint(link, baud=115_200) as endpoint:
        emulator = GrblEmulator(endpoint)
        async with background(emulator.run, "grbl"), Planner(broker.host, broker.port) as planner:
            async with running_agent(config) as agent:
                await agent.wait_device_online()
                await planner.command("estop", request_id="es-r")
                await planner.wait_status("estop")
                await planner.command("reset", request_id="rs-r")
                await planner.wait_status("awaiting_operator")
            async with running_agent(config) as agent:
                await agent.wait_device_online()
                await planner.submit({"job_id": "label-r1", "kind": "gcode", "program": LABEL})
                waiting = await planner.wait_event("label-r1", "awaiting_operator")
                assert waiting["detail"]["reason"] == "estop_reset"
                await asyncio.sleep(0.5)
                assert "started" not in planner.names_for("label-r1")
                assert emulator.executed == []
                await planner.command("start", request_id="st-r")
                assert (await planner.wait_terminal("label-r1"))["event"] == "succeeded"
            # Started once: after the next restart jobs run as usual.
            async with running_agent(config) as agent:
                await agent.wait_device_online()
                await planner.submit({"job_id": "label-r2", "kind": "gcode", "program": LABEL})
                assert (await planner.wait_terminal("label-r2"))["event"] == "succeeded"
                assert "awaiting_operator" not in planner.names_for("label-r2")
