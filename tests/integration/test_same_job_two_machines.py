"""One toolpaths job, two stations: a GRBL laser and an HP-GL pen plotter on one broker.

Each station compiles the job for its own machine; what the two emulators record, read back in
millimetres, is the same geometry (within one plotter unit, 0.025 mm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.profiles import load_profile
from agent.toolpaths import StrokeKind, parse_back
from tests.support.broker import Broker
from tests.support.rig import grbl_rig, hpgl_rig
from tests.toolpaths.garments import vinyl_logo_paths

pytestmark = pytest.mark.timeout(180)

TOLERANCE_MM = 0.025


def _job(job_id: str) -> dict[str, Any]:
    return {"job_id": job_id, "kind": "toolpaths",
            "toolpaths": {"units": "mm", "paths": vinyl_logo_paths(),
                          "settings": {"speed_mm_s": 40.0}},
            "copies": 2, "spacing_mm": 8.0, "origin_mm": [10.0, 10.0],
            "meta": {"order": "SO-2203", "garment": "T-shirt chest print"}}


async def test_laser_and_plotter_record_the_same_geometry(tmp_path: Path,
                                                          broker: Broker) -> None:
    async with grbl_rig(tmp_path, broker, profile="grbl-laser", station="laser-01") as laser, \
            hpgl_rig(tmp_path, broker, latency_s=0.0, pen_speed_mm_s=4000.0) as plotter:
        await laser.planner.submit(_job("SO-2203-logo-laser"))
        await plotter.planner.submit(_job("SO-2203-logo-plot"))
        assert (await laser.planner.wait_terminal("SO-2203-logo-laser"))["event"] == "succeeded"
        assert (await plotter.planner.wait_terminal("SO-2203-logo-plot"))["event"] == "succeeded"
    assert laser.emulator.executed[-1] == "G4P0"
    laser_cuts = [s.points for s in parse_back(laser.emulator.executed[:-1],
                                               load_profile("grbl-laser"))
                  if s.kind is StrokeKind.CUT]
    plot_cuts = [tuple((x / 40.0, y / 40.0) for x, y in s.points)
                 for s in plotter.emulator.strokes]
    assert len(laser_cuts) == len(plot_cuts) == 6  # three shapes, two copies
    for cut_l, cut_p in zip(laser_cuts, plot_cuts, strict=True):
        assert len(cut_l) == len(cut_p)
        for (xl, yl), (xp, yp) in zip(cut_l, cut_p, strict=True):
            assert abs(xl - xp) <= TOLERANCE_MM, (cut_l[:3], cut_p[:3])
            assert abs(yl - yp) <= TOLERANCE_MM

