"""GRBL in a mode in which it does not execute lines (Check, Sleep, Alarm): no job "succeeds".

The machine is put in the mode through the emulator's own state, as if a person had typed
``$C`` or ``$SLP`` at a terminal earlier, behind the agent's back. Through MQTT with a real
Mosquitto and the emulator on a real pty.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.drivers.base import MachineDriver, QuietListener, Readiness
from agent.drivers.grbl import GrblDriver
from agent.emulators.grbl import GrblEmulator
from agent.emulators.grbl_codes import GrblState
from agent.emulators.pty import PtyEndpoint
from agent.errors import DeviceError
from agent.garments import knife_gcode, tshirt_pieces
from agent.profiles import load_profile
from agent.profiles.grbl import GrblProfile
from agent.transport.serial_port import SerialLink
from tests.support.broker import Broker
from tests.support.planner import Planner
from tests.support.rig import after_status_polls, grbl_rig
from tests.support.station import background

pytestmark = pytest.mark.timeout(120)

LABEL = "G21 G90\nG0 X10 Y10\nG1 X50 Y10 F1200\nG1 X50 Y30\n"
LABEL_LINES = ["G21G90", "G0X10Y10", "G1X50Y10F1200", "G1X50Y30"]


def _warnings(planner: Planner, job_id: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in planner.events_for(job_id) if e["event"] == "warning"
            and e["detail"].get("code") == "machine_not_ready"]


@pytest.mark.parametrize("mode", [GrblState.CHECK, GrblState.SLEEP])
async def test_a_job_waits_queued_while_grbl_does_not_execute_lines(
        tmp_path: Path, broker: Broker, mode: GrblState) -> None:
    async with grbl_rig(tmp_path, broker) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.wait_status("idle")
        emulator.state = mode  # as if `$C` / `$SLP` had been typed at the machine
        await planner.submit({"job_id": "label-m1", "kind": "gcode", "program": LABEL})
        await planner.wait_event("label-m1", "accepted")
        warned = await planner.wait_for(lambda: _warnings(planner, "label-m1"), 15,
                                        "machine_not_ready warning")
        assert warned[0]["machine_state"] == mode.value
        assert warned[0]["reason"] == "machine_not_ready"
        status = await planner.wait_status("not_ready")
        assert status["device"]["state"] == mode.value
        # Queued, not started, not "succeeded", and nothing parsed or cut, however
        # often the agent looks at the machine.
        await after_status_polls(rig, 3)
        assert planner.names_for("label-m1") == ["accepted", "warning"]
        assert emulator.checked == [] and emulator.executed == []
        # A person resets the machine: check mode ends at once; sleep leaves GRBL
        # locked in alarm, and only a person's unlock lets the job start.
        await planner.command("reset", request_id="rs1")
        if mode is GrblState.SLEEP:
            await planner.wait_status("alarm")
            await after_status_polls(rig, 3)
            assert "started" not in planner.names_for("label-m1")
            await planner.command("unlock", request_id="u1")
        end = await planner.wait_terminal("label-m1")
        assert end["event"] == "succeeded", end
        assert emulator.executed == [*LABEL_LINES, "G4P0"]
        await planner.wait_status("idle")


async def test_check_mode_mid_job_fails_the_job_and_holds_the_next(tmp_path: Path,
                                                                   broker: Broker) -> None:
    program = knife_gcode(tshirt_pieces(), feed_mm_min=20_000)
    async with grbl_rig(tmp_path, broker, latency_s=0.001, motion=True) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "front-c1", "kind": "gcode", "program": program})
        await planner.submit({"job_id": "back-c1", "kind": "gcode", "program": LABEL})
        await planner.wait_for(lambda: len(emulator.executed) > 20, 30, "cutting")
        emulator.state = GrblState.CHECK
        end = await planner.wait_terminal("front-c1")
        assert end["event"] == "failed", end
        error = end["detail"]["error"]
        assert error["code"] == "machine_not_executing"
        assert error["device_code"] == "state:Check"
        # The next job does not run in check mode either: it waits, queued.
        await planner.wait_for(lambda: _warnings(planner, "back-c1"), 15, "warning")
        await planner.wait_status("not_ready")
        assert "started" not in planner.names_for("back-c1")
        executed = len(emulator.executed)
        await planner.command("reset", request_id="rs2")
        assert (await planner.wait_terminal("back-c1"))["event"] == "succeeded"
        assert emulator.executed[executed:] == [*LABEL_LINES, "G4P0"]


async def test_alarm_holds_a_job_queued_with_a_warning(tmp_path: Path, broker: Broker) -> None:
    async with grbl_rig(tmp_path, broker) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.wait_status("idle")
        emulator.state = GrblState.ALARM  # locked, as after a hard limit
        await planner.wait_status("alarm")
        await planner.submit({"job_id": "label-a1", "kind": "gcode", "program": LABEL})
        warned = await planner.wait_for(lambda: _warnings(planner, "label-a1"), 15,
                                        "warning")
        assert warned[0]["reason"] == "device_alarm"
        assert warned[0]["machine_state"] == "Alarm"
        await after_status_polls(rig, 3)
        assert "started" not in planner.names_for("label-a1")
        assert emulator.executed == []
        await planner.command("unlock", request_id="u2")
        assert (await planner.wait_terminal("label-a1"))["event"] == "succeeded"


@contextlib.asynccontextmanager
async def _driver_with_stale_status(
        emulator_box: list[GrblEmulator]) -> AsyncIterator[GrblDriver]:
    """A driver that polls status only every 10 s: its view of the machine goes stale."""
    profile = load_profile("grbl-1.1")
    assert isinstance(profile, GrblProfile)
    profile = profile.model_copy(update={"grbl": profile.grbl.model_copy(
        update={"poll_hz": 0.1, "response_timeout_s": 30.0})})
    async with PtyEndpoint(baud=115_200) as endpoint:
        emulator = GrblEmulator(endpoint)
        emulator_box.append(emulator)
        async with background(emulator.run, "grbl"):
            port = await SerialLink.open(str(endpoint.path), 115_200)
            driver = GrblDriver(port, QuietListener(), profile)
            try:
                await driver.open()
                run = asyncio.create_task(driver.run(), name="grbl-driver-run")
                try:
                    yield driver
                finally:
                    run.cancel()
                    await asyncio.gather(run, return_exceptions=True)
            finally:
                await port.close()


async def test_check_mode_entered_after_the_last_poll_is_caught() -> None:
    """Between two polls the driver still believes Idle: the report it asks for after the
    job's fence, and the check just before a start, still see Check."""
    box: list[GrblEmulator] = []
    async with _driver_with_stale_status(box) as driver:
        emulator = box[0]
        emulator.state = GrblState.CHECK
        assert driver.ready_for_job == Readiness.READY  # stale: no poll since
        with pytest.raises(DeviceError) as caught:
            await driver.stream(LABEL_LINES, lambda n: None)
        assert caught.value.code == "machine_not_executing"
        assert emulator.checked == [*LABEL_LINES, "G4P0"]
        assert emulator.executed == []
        assert _readiness(driver) == Readiness.MACHINE_NOT_READY  # read again after the job
        # Out of check mode behind the driver's back, then into it again.
        emulator.state = GrblState.IDLE
        assert await driver.check_ready() == Readiness.READY
        emulator.state = GrblState.CHECK
        assert driver.ready_for_job == Readiness.READY
        assert await driver.check_ready() == Readiness.MACHINE_NOT_READY


async def test_an_alarm_seen_only_in_a_status_report_fails_the_running_job(
        tmp_path: Path, broker: Broker) -> None:
    """The ALARM:N line itself lost on the wire: the next report still stops the job."""
    program = knife_gcode(tshirt_pieces(), feed_mm_min=20_000)
    async with grbl_rig(tmp_path, broker, latency_s=0.001, motion=True) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "front-a2", "kind": "gcode", "program": program})
        await planner.wait_for(lambda: len(emulator.executed) > 20, 30, "cutting")
        emulator.state = GrblState.ALARM  # no ALARM:N line is sent
        end = await planner.wait_terminal("front-a2")
        assert end["event"] == "failed", end
        assert end["detail"]["error"]["code"] == "device_alarm"
        assert end["detail"]["error"]["device_code"] == "state:Alarm"
        await planner.wait_status("alarm")


def _readiness(driver: MachineDriver) -> Readiness:
    """What the driver says now (a fresh read: mypy keeps a property narrowed by an earlier
    assert, though the driver's state has moved on since)."""
    return driver.ready_for_job
