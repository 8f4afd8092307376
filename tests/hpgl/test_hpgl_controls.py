"""Cancel, e-stop, pause, plotter errors and a lost link, on a real pty."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from agent.aio import wait_within
from agent.dialects.hpgl import prepare_hpgl_program
from agent.drivers.base import MachineDriver, Readiness
from agent.errors import DeviceError, DeviceLost, JobStopped
from tests.hpgl.plots import graded_nest, sleeve_pattern
from tests.hpgl.rig import Rig, hpgl_profile, plotter_rig, wait_until_idle

pytestmark = pytest.mark.timeout(90)


def start_stream(rig: Rig, lines: tuple[str, ...], after: int) -> tuple[asyncio.Task[object],
                                                                        asyncio.Event]:
    """Stream in a task; the event is set once ``after`` lines have been handed over."""
    reached = asyncio.Event()

    def progress(n: int) -> None:
        if n >= after:
            reached.set()

    task: asyncio.Task[object] = asyncio.create_task(rig.driver.stream(lines, progress))
    return task, reached


async def wait_for(condition: object, limit_s: float = 10.0) -> None:
    assert callable(condition)
    async with asyncio.timeout(limit_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


async def test_open_reads_identity_and_the_smaller_buffer_and_clears_old_errors() -> None:
    async with plotter_rig(hpgl_profile(), buffer_bytes=512, stale_io_error=16) as rig:
        assert rig.info.firmware == "7475A"
        assert rig.info.capabilities["buffer_bytes"] == 512  # the device's ESC.L, not 1024
        assert rig.info.capabilities["flow_control"] == "buffer_query"
        assert any(d.get("device_code") == "ESC.E16" for _, d in rig.listener.warnings)
        assert rig.emulator.io_error == 0  # reading ESC.E cleared it
        assert not rig.emulator.status_initialized  # reading OS cleared "initialised"
        assert _readiness(rig.driver) == Readiness.READY  # read again after the reset


async def test_a_cutter_without_oi_still_connects() -> None:
    profile = hpgl_profile("roland-camm-gl3").model_copy(update={"hello_timeout_s": 1.0})
    async with plotter_rig(profile, identity="") as rig:
        assert rig.info.firmware == "HP-GL"
        assert any("OI;" in message for message, _ in rig.listener.warnings)
        assert rig.emulator.hpgl_error == 0  # the error OI; raised was read and cleared
        assert rig.driver.ready_for_job == Readiness.READY
        await rig.driver.stream(("PA;", "SP1;", "PU400,400;", "PD800,400;", "PU;"),
                                lambda n: None)
        assert rig.emulator.strokes[-1].points == ((400, 400), (800, 400))


async def test_cancel_aborts_discards_the_buffer_and_parks_the_pen() -> None:
    profile = hpgl_profile()
    program = prepare_hpgl_program(graded_nest()[0], profile)
    async with plotter_rig(profile, pen_speed_mm_s=300.0) as rig:
        task, reached = start_stream(rig, program.lines, after=2000)
        await wait_within(reached.wait(), 30)
        await rig.driver.cancel()
        with pytest.raises(JobStopped) as caught:
            await task
        assert caught.value.code == "canceled"
        emulator = rig.emulator
        await wait_until_idle(emulator, emulator.bytes_received)
        assert not emulator.pen_down
        assert emulator.pen == 0
        assert emulator.overflow_errors == 0
        assert rig.driver.lines_acknowledged < len(program)
        # Lines handed to the plotter but never run: ESC.K discarded what was buffered.
        assert emulator.instructions_run + 20 < rig.driver.lines_acknowledged
        # Far less than the job was drawn: the buffered rest was discarded.
        drawn = len(emulator.strokes)
        assert drawn < len(graded_nest()[1])
        # The driver learns the emptied buffer at its next status poll (later on a busy host).
        for _ in range(200):
            if rig.driver.ready_for_job == Readiness.READY:
                break
            await asyncio.sleep(0.05)
        assert rig.driver.ready_for_job == Readiness.READY
        # The next job runs normally.
        text, expected = sleeve_pattern()
        await rig.driver.stream(prepare_hpgl_program(text, profile).lines, lambda n: None)
        assert [(s.pen, s.points) for s in emulator.strokes[drawn:]] == expected


async def test_estop_blocks_jobs_until_reset() -> None:
    profile = hpgl_profile()
    program = prepare_hpgl_program(graded_nest()[0], profile)
    async with plotter_rig(profile, pen_speed_mm_s=300.0) as rig:
        task, reached = start_stream(rig, program.lines, after=1000)
        await wait_within(reached.wait(), 30)
        await rig.driver.estop()
        with pytest.raises(JobStopped) as caught:
            await task
        assert caught.value.code == "estop"
        assert rig.driver.ready_for_job == Readiness.ESTOP
        with pytest.raises(DeviceError) as refused:
            await rig.driver.stream(("PU0,0;",), lambda n: None)
        assert refused.value.code == "estop"
        await wait_until_idle(rig.emulator, rig.emulator.bytes_received)
        await rig.driver.reset()
        assert _readiness(rig.driver) == Readiness.READY  # read again after the reset
        assert not rig.emulator.pen_down  # IN; lifted the pen


async def test_pause_stops_feeding_and_resume_finishes_the_plot() -> None:
    profile = hpgl_profile()
    text, expected = sleeve_pattern()
    program = prepare_hpgl_program(text, profile)
    async with plotter_rig(profile, pen_speed_mm_s=400.0) as rig:
        task, reached = start_stream(rig, program.lines, after=30)
        await wait_within(reached.wait(), 30)
        await rig.driver.pause()
        sent_at_pause = rig.driver.lines_acknowledged
        await asyncio.sleep(0.3)  # let the bytes already on their way arrive
        received = rig.emulator.bytes_received
        await asyncio.sleep(0.5)
        assert rig.emulator.bytes_received == received
        assert rig.driver.lines_acknowledged == sent_at_pause
        assert not task.done()
        await rig.driver.resume()
        result = await wait_within(task, 60)
        assert result.lines_done == len(program)  # type: ignore[attr-defined]
        assert rig.emulator.overflow_errors == 0
        assert [(s.pen, s.points) for s in rig.emulator.strokes] == expected


async def test_a_plotter_error_fails_the_job_with_its_code() -> None:
    """A bad instruction (sent raw, past the dialect) is reported by OS; then OE;."""
    async with plotter_rig(hpgl_profile()) as rig:
        lines = ("PA;", "SP1;", "PU400,400;", "PD800,400,800;", "PU;", "SP0;")
        with pytest.raises(DeviceError) as caught:
            await rig.driver.stream(lines, lambda n: None)
        assert caught.value.code == "device_error"
        assert caught.value.device_code == "OE2"  # wrong number of parameters
        assert rig.driver.ready_for_job == Readiness.READY


async def test_operator_pause_at_the_plotter_is_reported_and_refuses_jobs() -> None:
    profile = hpgl_profile()
    fast = profile.model_copy(update={"telemetry_hz": 10.0})
    async with plotter_rig(fast) as rig:
        rig.emulator.set_lever_up(True)
        await wait_for(lambda: rig.driver.ready_for_job == Readiness.LEVER_UP)
        assert "lever_up" in rig.listener.states
        rig.emulator.set_lever_up(False)
        await wait_for(lambda: rig.driver.ready_for_job == Readiness.READY)
        assert rig.listener.telemetry
        assert rig.listener.telemetry[-1].extra["buffer_bytes"] == 1024


async def test_a_lost_link_ends_the_stream_and_the_run_task() -> None:
    profile = hpgl_profile()
    program = prepare_hpgl_program(graded_nest()[0], profile)
    async with plotter_rig(profile, pen_speed_mm_s=300.0) as rig:
        task, reached = start_stream(rig, program.lines, after=500)
        await wait_within(reached.wait(), 30)
        rig.endpoint.disconnect()
        with pytest.raises(DeviceLost):
            await wait_within(task, 30)
        with pytest.raises(DeviceLost):
            await wait_within(rig.run_task, 30)
        assert rig.driver.ready_for_job == Readiness.OFFLINE
        with contextlib.suppress(Exception):
            await rig.emulator.stop()


async def test_a_plotter_reset_mid_job_is_caught_at_the_next_status_check() -> None:
    """OS bit 3 ("initialised") without an IN; from us: the plotter lost the job's state."""
    profile = hpgl_profile(check_every_bytes=512)
    program = prepare_hpgl_program(graded_nest()[0], profile)
    async with plotter_rig(profile, pen_speed_mm_s=300.0) as rig:
        task, reached = start_stream(rig, program.lines, after=1500)
        await wait_within(reached.wait(), 30)
        rig.emulator.power_cycle()
        with pytest.raises(DeviceError) as caught:
            await wait_within(task, 30)
        assert caught.value.code == "device_error"
        assert caught.value.device_code is not None
        assert caught.value.device_code.startswith("OS")
        assert caught.value.line is not None
        assert caught.value.line >= 1500


def _readiness(driver: MachineDriver) -> Readiness:
    """What the driver says now (a fresh read: mypy keeps a property narrowed by an earlier
    assert, though the driver's state has moved on since)."""
    return driver.ready_for_job
