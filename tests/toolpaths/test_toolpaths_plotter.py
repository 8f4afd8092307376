"""Compiled HP-GL streamed by the HP-GL driver to the plotter emulator over a real pty: the
emulator's pen-down strokes are exactly what parse-back says the machine will do."""

from __future__ import annotations

import pytest

from agent.toolpaths import StrokeKind, compile_toolpaths, parse_back
from tests.hpgl.rig import hpgl_profile, plotter_rig
from tests.toolpaths.garments import job, vinyl_logo_paths

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("name", ["roland-camm-gl3", "hpgl-7475a"])
async def test_emulated_plotter_draws_what_parse_back_predicts(name: str) -> None:
    profile = hpgl_profile(name)
    logos = job(vinyl_logo_paths(), copies=2, spacing_mm=8.0, origin_mm=[5.0, 5.0])
    program = compile_toolpaths(logos, profile)
    predicted = [s for s in parse_back(program.lines, profile) if s.kind is StrokeKind.CUT]
    async with plotter_rig(profile, pen_speed_mm_s=4000.0) as rig:
        result = await rig.driver.stream(program.lines, lambda _: None)
        emulator = rig.emulator
        assert result.lines_done == len(program)
        assert emulator.overflow_errors == 0
        assert emulator.hpgl_error == 0
    assert len(emulator.strokes) == len(predicted) == 6
    for drawn, stroke in zip(emulator.strokes, predicted, strict=True):
        assert drawn.pen == 1
        # In plotter units: where the pen went down, then every point it was drawn through.
        assert list(drawn.points) == [(round(x * 40), round(y * 40)) for x, y in stroke.points]
