"""Operator actions, long commands and failures, end to end on a pseudo-terminal."""

from __future__ import annotations

import argparse
import asyncio
import re
from pathlib import Path

import pytest

from agent.aio import wait_within
from agent.drivers.base import Readiness
from agent.drivers.marlin import MarlinDriver
from agent.emulators.marlin import DEFAULT_CAPABILITIES, add_cli_arguments
from agent.errors import DeviceError, DeviceLost, DeviceTimeout, JobStopped
from agent.families import create_driver
from tests.marlin.conftest import (
    Progress,
    RecordingListener,
    executed_program,
    marlin_profile,
    marlin_station,
    sleeve_program,
)
from tests.support.eventually import eventually

pytestmark = pytest.mark.timeout(90)

LABEL_JOB = (
    "M104 S210",
    "M140 S60",
    "G28",
    "M190 S60",
    "M109 S210",
    "M117 Care label",
    "G1 Z0.3 F600",
    "G1 X10 Y10 F1500",
    "G1 X50 Y10",
    "G1 X50 Y25",
    "G1 X10 Y25",
    "G1 X10 Y10",
    "M104 S0",
    "M140 S0",
)


async def test_handshake_reads_m115_and_switches_on_reports(tmp_path: Path) -> None:
    async with marlin_station(tmp_path) as station:
        info = station.driver.info
        log = list(station.emulator.log)
    assert info.firmware == "marlin"
    assert info.version.startswith("Marlin 2.1.2.1")
    assert info.capabilities["AUTOREPORT_TEMP"] is True
    assert info.capabilities["EMERGENCY_PARSER"] is True
    assert info.capabilities["ADVANCED_OK"] is False
    assert "M115" in log
    assert any(line.startswith("M155 S") for line in log)
    assert any(line.startswith("M113 S") for line in log)
    assert isinstance(station.driver, MarlinDriver)


def test_factory_builds_the_marlin_driver() -> None:
    class _Link:
        name = "none"

    driver = create_driver(marlin_profile(), _Link(), RecordingListener())  # type: ignore[arg-type]
    assert isinstance(driver, MarlinDriver)


async def test_twenty_seconds_of_heating_do_not_time_out(tmp_path: Path) -> None:
    # No BUSY_PROTOCOL and a 0.5 s response timeout: only the M109/M190 allowances keep the job
    # alive through 20 simulated seconds of heating (run 10x faster than the wall clock).
    caps = dict(DEFAULT_CAPABILITIES, BUSY_PROTOCOL=False)
    profile = marlin_profile(boot_wait_s=0.2, response_timeout_s=0.5)
    async with marlin_station(
        tmp_path, profile=profile, capabilities=caps, heating_rate_c_s=9.0, time_scale=10.0
    ) as station:
        result = await wait_within(station.driver.stream(LABEL_JOB, lambda n: None), 60)
        emulator = station.emulator
        telemetry = list(station.listener.telemetry)
    assert result.lines_done == len(LABEL_JOB)
    assert executed_program(emulator.executed) == list(LABEL_JOB)
    # The hot end went from room temperature (22 C) to 209 C at 9 C/s: 20.8 simulated seconds
    # (about 2 s of wall time), with nothing on the wire but temperature lines meanwhile.
    assert emulator.hotend.current >= 209
    assert any("hotend_c" in t.extra and t.extra.get("hotend_target_c") == 210 for t in telemetry)


async def test_busy_messages_carry_a_long_homing(tmp_path: Path) -> None:
    # BUSY_PROTOCOL on, keepalive every second: a 3.5 s G28 outlasts 2.5 keepalive intervals.
    profile = marlin_profile(boot_wait_s=0.2, response_timeout_s=0.5)
    async with marlin_station(tmp_path, profile=profile, homing_time_s=3.5) as station:
        result = await wait_within(
            station.driver.stream(("G28", "G1 X10 Y10 F3000"), lambda n: None), 30
        )
    assert result.lines_done == 2


async def test_a_silent_board_fails_the_job_with_device_timeout(tmp_path: Path) -> None:
    profile = marlin_profile(boot_wait_s=0.2, response_timeout_s=1.0)
    lines = sleeve_program(4000)
    async with marlin_station(tmp_path, profile=profile) as station:
        progress = Progress()
        job = asyncio.create_task(station.driver.stream(lines, progress))
        await progress.reached(300)
        station.emulator.go_silent()
        with pytest.raises(DeviceTimeout) as info:
            await wait_within(job, 20)  # 2.5 s of silence, one probe, 1 s more
        probes = [line for line in station.emulator.log if line.endswith(tuple("0123456789"))
                  and " M105*" in line]
    assert info.value.code == "device_timeout"
    assert info.value.line is not None
    assert 300 <= info.value.line <= len(lines)
    assert probes  # the probe went out before giving up


async def test_estop_reaches_the_board_before_any_further_program_line(tmp_path: Path) -> None:
    lines = sleeve_program(5000)
    async with marlin_station(tmp_path, latency_s=0.005) as station:
        driver, emulator = station.driver, station.emulator
        progress = Progress()
        job = asyncio.create_task(driver.stream(lines, progress))
        await progress.reached(400)
        flow = driver.flow
        assert flow is not None
        last_written = flow.last_sent_number
        await driver.estop()
        with pytest.raises(JobStopped) as info:
            await wait_within(job, 10)
        for _ in range(100):
            if emulator.killed:
                break
            await asyncio.sleep(0.01)
        log = list(emulator.log)
        ready = driver.ready_for_job
    assert info.value.code == "estop"
    assert emulator.killed
    stop_at = log.index("M112")
    numbers = [int(m.group(1)) for line in log[stop_at + 1:]
               if (m := re.match(r"N(\d+) ", line))]
    # Nothing the agent wrote after the e-stop reached the board, and what follows M112 was
    # already on its way before it.
    assert all(n <= last_written for n in numbers)
    assert len(emulator.executed) < len(lines)
    assert ready == Readiness.ESTOP


async def test_cancel_stops_feeding_and_runs_the_cancel_sequence(tmp_path: Path) -> None:
    profile = marlin_profile(boot_wait_s=0.2)
    lines = sleeve_program(5000)
    async with marlin_station(tmp_path, profile=profile) as station:
        progress = Progress()
        job = asyncio.create_task(station.driver.stream(lines, progress))
        await progress.reached(300)
        await station.driver.cancel()
        with pytest.raises(JobStopped) as info:
            await wait_within(job, 10)
        ran = executed_program(station.emulator.executed)
        ready = station.driver.ready_for_job
    assert info.value.code == "canceled"
    cancel = list(profile.marlin.cancel_sequence)
    assert ran[-len(cancel):] == cancel
    program_part = ran[: -len(cancel)]
    assert program_part == list(lines[: len(program_part)])
    assert 300 <= len(program_part) < len(lines)
    assert ready == Readiness.READY


async def test_pause_holds_the_feed_and_resume_finishes_the_job(tmp_path: Path) -> None:
    lines = sleeve_program(3000)
    async with marlin_station(tmp_path) as station:
        progress = Progress()
        job = asyncio.create_task(station.driver.stream(lines, progress))
        await progress.reached(200)
        await station.driver.pause()
        await asyncio.sleep(0.3)  # what was in flight drains
        held = len(station.emulator.executed)
        await asyncio.sleep(0.5)
        still = len(station.emulator.executed)
        await station.driver.resume()
        result = await wait_within(job, 30)
        ran = executed_program(station.emulator.executed)
    assert held == still
    assert held < len(lines)
    assert result.lines_done == len(lines)
    assert ran == list(lines)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("Error:Hotend heating failed", "device_error"),
        ("Error:Printer halted. kill() called!", "device_killed"),
    ],
)
async def test_firmware_error_fails_the_job_with_its_text(
    tmp_path: Path, message: str, code: str
) -> None:
    lines = sleeve_program(4000)
    async with marlin_station(tmp_path) as station:
        progress = Progress()
        job = asyncio.create_task(station.driver.stream(lines, progress))
        await progress.reached(200)
        station.emulator.say(message)
        with pytest.raises(DeviceError) as info:
            await wait_within(job, 10)
        ready = station.driver.ready_for_job
    assert info.value.code == code
    assert info.value.device_code == message.partition(":")[2]
    assert info.value.line is not None
    assert info.value.line >= 200
    if code == "device_killed":
        assert ready == Readiness.DEVICE_KILLED


async def test_unknown_command_is_reported_as_a_warning(tmp_path: Path) -> None:
    program = ("G21", "M42 P4 S255", "G1 X10 Y10 F3000")
    async with marlin_station(tmp_path) as station:
        result = await wait_within(station.driver.stream(program, lambda n: None), 10)
        warnings = list(station.listener.warnings)
    assert result.lines_done == 3
    assert [w[1]["code"] for w in warnings] == ["unknown_command"]
    assert warnings[0][1]["line"] == 2
    assert result.warnings[0]["command"] == "M42 P4 S255"


async def test_unplugged_board_fails_the_job_with_device_lost(tmp_path: Path) -> None:
    lines = sleeve_program(4000)
    async with marlin_station(tmp_path) as station:
        progress = Progress()
        job = asyncio.create_task(station.driver.stream(lines, progress))
        await progress.reached(200)
        station.endpoint.disconnect()
        with pytest.raises(DeviceLost):
            await wait_within(job, 10)
        with pytest.raises(DeviceLost):
            await wait_within(station.run_task, 10)  # run() ends with the link
        assert station.driver.ready_for_job == Readiness.OFFLINE
        assert station.listener.states[-1] == "lost"


async def test_no_answer_at_all_fails_open_with_device_timeout(tmp_path: Path) -> None:
    from agent.emulators.pty import PtyEndpoint
    from agent.transport.serial_port import SerialLink

    profile = marlin_profile(boot_wait_s=0.1).model_copy(update={"hello_timeout_s": 1.0})
    async with PtyEndpoint(tmp_path / "dead", baud=None) as endpoint:
        link = await SerialLink.open(endpoint.path, 115200)
        try:
            with pytest.raises(DeviceTimeout) as info:
                await MarlinDriver(link, RecordingListener(), profile).open()
        finally:
            await link.close()
    assert info.value.code == "device_timeout"


def test_cli_arguments() -> None:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    args = parser.parse_args(["--link", "/tmp/marlin0", "--latency-ms", "5", "--bufsize", "8",
                              "--advanced-ok", "--corrupt", "0.02", "--drop-ok", "0.005",
                              "--record", "/tmp/ran.gcode"])
    assert args.link == Path("/tmp/marlin0")
    assert args.bufsize == 8
    assert args.advanced_ok is True
    assert args.corrupt == pytest.approx(0.02)
    assert args.drop_ok == pytest.approx(0.005)
    assert args.baud == 0
    assert args.record == Path("/tmp/ran.gcode")


async def test_pause_may_break_a_heat_wait_with_m108(tmp_path: Path) -> None:
    # Opt-in: with EMERGENCY_PARSER, pausing during M109 ends the wait at once.
    profile = marlin_profile(boot_wait_s=0.2, pause_breaks_heat_wait=True)
    program = ("M109 S210", "G1 X10 Y10 F1500", "G1 X50 Y10")
    async with marlin_station(
        tmp_path, profile=profile, heating_rate_c_s=1.0, time_scale=1.0
    ) as station:
        job = asyncio.create_task(station.driver.stream(program, lambda n: None))
        executed = station.emulator.executed
        await eventually(lambda: executed and executed[-1] == "M109 S210",
                         what="the board waiting for the heater", watch=[job])
        await station.driver.pause()
        await station.driver.resume()
        result = await wait_within(job, 20)
        log = list(station.emulator.log)
        hotend = station.emulator.hotend.current
    assert "M108" in log
    assert hotend < 200  # the wait was broken, not finished
    assert result.lines_done == len(program)


async def test_a_board_that_garbles_every_line_fails_with_resend_loop(tmp_path: Path) -> None:
    profile = marlin_profile(boot_wait_s=0.2, max_resends_per_line=4)
    async with marlin_station(tmp_path, profile=profile) as station:
        station.emulator.corrupt_fraction = 1.0
        with pytest.raises(DeviceError) as info:
            await wait_within(station.driver.stream(LABEL_JOB, lambda n: None), 20)
    assert info.value.code == "resend_loop"


async def test_temperatures_are_polled_without_auto_report(tmp_path: Path) -> None:
    caps = dict(DEFAULT_CAPABILITIES, AUTOREPORT_TEMP=False)
    profile = marlin_profile(boot_wait_s=0.2).model_copy(update={"telemetry_hz": 10.0})
    async with marlin_station(tmp_path, profile=profile, capabilities=caps) as station:
        station.emulator.hotend.target = 60.0
        seen = station.listener.telemetry
        await eventually(lambda: seen and seen[-1].extra.get("hotend_target_c") == 60.0,
                         what="telemetry with the new target", watch=[station.run_task])
        telemetry = list(station.listener.telemetry)
        log = list(station.emulator.log)
    assert "M105" in log
    assert not any(line.startswith("M155") for line in log)
    assert telemetry
    assert telemetry[-1].extra["hotend_target_c"] == 60.0


async def test_reset_after_an_estop_needs_the_board_reset(tmp_path: Path) -> None:
    profile = marlin_profile(boot_wait_s=0.2, response_timeout_s=0.5)
    async with marlin_station(tmp_path, profile=profile) as station:
        await station.driver.estop()
        assert station.driver.ready_for_job == Readiness.ESTOP
        with pytest.raises(DeviceError) as info:
            await station.driver.reset()
        assert station.driver.ready_for_job == Readiness.ESTOP
    # M112 killed the board: only its reset button or a power cycle brings it back.
    assert info.value.code == "device_killed"


async def test_idle_m105_answers_are_not_taken_for_a_jobs_own(tmp_path: Path) -> None:
    # No auto-report: the driver polls M105 between jobs. A poll still owed when a short job
    # starts must not answer the job's final M105 (the job would end before its last lines ran).
    caps = dict(DEFAULT_CAPABILITIES, AUTOREPORT_TEMP=False)
    profile = marlin_profile(boot_wait_s=0.2).model_copy(update={"telemetry_hz": 20.0})
    job = ("G21", "G90", "G1 X10 Y10 F1500", "G4 P100", "G1 X50 Y10", "M107")
    async with marlin_station(
        tmp_path, profile=profile, capabilities=caps, latency_s=0.02
    ) as station:
        for _ in range(5):
            await asyncio.sleep(0.06)
            await wait_within(station.driver.stream(job, lambda n: None), 10)
            assert executed_program(station.emulator.executed)[-len(job):] == list(job)
        log = list(station.emulator.log)
    assert log.count("M105") >= 3  # the polls really went out between the jobs
