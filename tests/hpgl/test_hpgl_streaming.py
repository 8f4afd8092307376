"""Driver + SerialLink + emulator on a real pty: big jobs never overflow the plotter's buffer."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from agent.dialects.hpgl import prepare_hpgl_program
from agent.drivers.base import Readiness
from agent.errors import DeviceError
from tests.hpgl.plots import chest_logo_vinyl, graded_nest, sleeve_pattern, strokes_of
from tests.hpgl.rig import hpgl_profile, plotter_rig, wait_until_idle

pytestmark = pytest.mark.timeout(90)


async def test_twenty_thousand_instructions_at_full_speed_never_overflow() -> None:
    """The pty is as fast as it goes, the pen is the bottleneck: the buffer fills, never over."""
    profile = hpgl_profile()
    text, expected = graded_nest()
    program = prepare_hpgl_program(text, profile)
    assert len(program) >= 20_000
    progress: list[int] = []
    async with plotter_rig(profile, wire_baud=None, pen_speed_mm_s=2000.0) as rig:
        result = await rig.driver.stream(program.lines, progress.append)
        emulator = rig.emulator
        assert result.lines_done == len(program)
        assert progress[-1] == len(program)
        assert progress == sorted(progress)
        assert rig.driver.lines_acknowledged == len(program)
        assert emulator.overflow_errors == 0
        assert emulator.bytes_dropped == 0
        assert emulator.io_error == 0
        # The flow control was really exercised: the buffer ran nearly full...
        assert emulator.peak_fill > emulator.capacity // 2
        # ...but never into the reserve.
        assert emulator.peak_fill <= emulator.capacity - profile.hpgl.reserve_bytes
        assert emulator.idle  # stream() returned only once the plot was finished
        assert [(s.pen, s.points) for s in emulator.strokes] == expected
        assert rig.driver.ready_for_job == Readiness.READY


async def test_a_sender_that_ignores_the_buffer_does_overflow_it() -> None:
    """The same job written straight to the port (no flow control) loses bytes: error 16."""
    profile = hpgl_profile()
    text, expected = graded_nest(sizes=(98, 110))
    program = prepare_hpgl_program(text, profile)
    payload = "".join(program.lines).encode("ascii")
    async with plotter_rig(profile, wire_baud=None, pen_speed_mm_s=2000.0) as rig:
        rig.link.write(payload)  # the overrun sender: everything at once
        await wait_until_idle(rig.emulator, len(payload))
        emulator = rig.emulator
        assert emulator.overflow_errors >= 1
        assert emulator.bytes_dropped > 0
        assert [(s.pen, s.points) for s in emulator.strokes] != expected
        assert emulator.io_error == 16
        # The driver's reset reads (and so clears) ESC.E, reports it, and discards the garbage.
        await rig.driver.reset()
        assert any(d.get("device_code") == "ESC.E16" for _, d in rig.listener.warnings)
        assert emulator.io_error == 0
        assert rig.driver.ready_for_job == Readiness.READY
        drawn = len(emulator.strokes)
        small = prepare_hpgl_program("SP1;PU400,400;PD800,400;PU;SP0;", profile)
        await rig.driver.stream(small.lines, lambda n: None)
        assert emulator.strokes[drawn:][-1].points == ((400, 400), (800, 400))


async def test_the_record_file_holds_the_cut_in_order(tmp_path: Path) -> None:
    """A vinyl chest logo on the cutter at a real baud rate: the record equals the program."""
    profile = hpgl_profile("roland-camm-gl3", baud=38_400)
    text, expected = chest_logo_vinyl()
    program = prepare_hpgl_program(text, profile)
    record = tmp_path / "logo.jsonl"
    async with plotter_rig(profile, wire_baud=38_400, buffer_bytes=2048, pen_speed_mm_s=500.0,
                           record_path=record) as rig:
        await rig.driver.stream(program.lines, lambda n: None)
        assert rig.emulator.overflow_errors == 0
    rows = [json.loads(row) for row in record.read_text().splitlines()]
    assert [(r["pen"], tuple(tuple(p) for p in r["points"])) for r in rows] == expected


async def test_xon_xoff_keeps_the_buffer_from_overflowing() -> None:
    profile = hpgl_profile(flow_control="xonxoff", baud=115_200, xoff_threshold_bytes=256)
    text, expected = sleeve_pattern()
    program = prepare_hpgl_program(text, profile)
    async with plotter_rig(profile, wire_baud=None, pen_speed_mm_s=600.0) as rig:
        await rig.driver.stream(program.lines, lambda n: None)
        emulator = rig.emulator
        assert emulator.xoff_count >= 1  # the plotter did have to hold us back
        assert emulator.overflow_errors == 0
        assert [(s.pen, s.points) for s in emulator.strokes] == expected


async def test_rtscts_without_a_cts_wire_is_caught_as_an_overflow() -> None:
    """A pty has no CTS line, like a cable without it: the driver's ESC.E check fails the job."""
    profile = hpgl_profile(flow_control="rtscts", baud=115_200)
    text, _ = sleeve_pattern()
    program = prepare_hpgl_program(text, profile)
    async with plotter_rig(profile, wire_baud=None, pen_speed_mm_s=200.0) as rig:
        with pytest.raises(DeviceError) as caught:
            await rig.driver.stream(program.lines, lambda n: None)
        assert caught.value.code == "buffer_overflow"
        assert caught.value.line is not None
        assert rig.emulator.overflow_errors >= 1
        # The failed job was aborted: buffer discarded, pen up and put away.
        await wait_until_idle(rig.emulator, rig.emulator.bytes_received)
        assert not rig.emulator.pen_down
        assert rig.emulator.pen == 0


def segments(strokes: list[tuple[int, tuple[tuple[int, int], ...]]]) -> list[tuple[object, ...]]:
    return [(pen, a, b) for pen, pts in strokes for a, b in itertools.pairwise(pts)]


async def test_a_job_continued_mid_stroke_draws_the_rest_once() -> None:
    """start_index in the middle of a pen-down run: nothing drawn twice, nothing missed."""
    profile = hpgl_profile()
    text, expected = sleeve_pattern()
    program = prepare_hpgl_program(text, profile)
    start = next(i for i, line in enumerate(program.lines)
                 if line.startswith("PD") and program.lines[i - 1].startswith("PD") and i > 20)
    already = strokes_of(program.lines[:start])  # what the first, interrupted run drew
    async with plotter_rig(profile, pen_speed_mm_s=2000.0) as rig:
        progress: list[int] = []
        result = await rig.driver.stream(program.lines, progress.append, start_index=start)
        assert result.lines_done == len(program)
        assert progress[0] > start
        assert progress[-1] == len(program)
        rest = [(s.pen, s.points) for s in rig.emulator.strokes]
    assert not set(segments(already)) & set(segments(rest))
    assert segments(already) + segments(rest) == segments(expected)
