"""One toolpaths job, two stations: a GRBL laser and an HP-GL pen plotter on one broker.

Each station compiles the job for its own machine; what the two emulators record, read back in
millimetres, is the same geometry (within one plotter unit, 0.025 mm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.emulators.grbl import GrblEmulator
from agent.emulators.hpgl import HpglEmulator
from agent.emulators.pty import PtyEndpoint
from agent.profiles import load_profile
from agent.toolpaths import StrokeKind, parse_back
from tests.support.broker import Broker
from tests.support.planner import Planner
from tests.support.station import agent_config, background, running_agent
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
    laser_link, plot_link = tmp_path / "ttyLASER", tmp_path / "ttyPLOT"
    async with PtyEndpoint(laser_link, baud=115_200) as laser_end, \
            PtyEndpoint(plot_link, baud=None) as plot_end:
        laser = GrblEmulator(laser_end)
        plotter = HpglEmulator(plot_end, pen_speed_mm_s=4000.0)
        laser_cfg = agent_config(tmp_path, broker, laser_link, profile="grbl-laser",
                                 station="laser-01")
        plot_cfg = agent_config(tmp_path, broker, plot_link, profile="hpgl-7475a",
                                station="plotter-01")
        async with background(laser.run, "grbl"), background(plotter.serve, "hpgl"), \
                Planner(broker.host, broker.port, station="laser-01") as to_laser, \
                Planner(broker.host, broker.port, station="plotter-01") as to_plotter, \
                running_agent(laser_cfg) as a, running_agent(plot_cfg) as b:
            await a.wait_device_online()
            await b.wait_device_online()
            await to_laser.submit(_job("SO-2203-logo-laser"))
            await to_plotter.submit(_job("SO-2203-logo-plot"))
            assert (await to_laser.wait_terminal("SO-2203-logo-laser"))["event"] == "succeeded"
            assert (await to_plotter.wait_terminal("SO-2203-logo-plot"))["event"] == "succeeded"
    assert laser.executed[-1] == "G4P0"
    laser_cuts = [s.points for s in parse_back(laser.executed[:-1], load_profile("grbl-laser"))
                  if s.kind is StrokeKind.CUT]
    plot_cuts = [tuple((x / 40.0, y / 40.0) for x, y in s.points) for s in plotter.strokes]
    assert len(laser_cuts) == len(plot_cuts) == 6  # three shapes, two copies
    for cut_l, cut_p in zip(laser_cuts, plot_cuts, strict=True):
        assert len(cut_l) == len(cut_p)
        for (xl, yl), (xp, yp) in zip(cut_l, cut_p, strict=True):
            assert abs(xl - xp) <= TOLERANCE_MM, (cut_l[:3], cut_p[:3])
            assert abs(yl - yp) <= TOLERANCE_MM

