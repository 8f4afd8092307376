"""Pattern jobs published on MQTT, compiled by the station and run on emulated machines over
real ptys: the machine's own record parses back to the placed pieces' outlines."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from agent.patterns.compile import plan_pattern
from agent.patterns.sample import tshirt_dxf
from agent.profiles import load_profile
from agent.toolpaths import StrokeKind, compile_for_target, parse_for_target, target_for
from tests.patterns.helpers import cut_traces_outline, pattern_job, pattern_payload
from tests.support.broker import Broker
from tests.support.rig import grbl_rig, hpgl_rig

pytestmark = pytest.mark.timeout(180)


async def test_tshirt_pattern_is_cut_on_the_grbl_knife(tmp_path: Path, broker: Broker) -> None:
    data = tshirt_dxf(("S", "M", "L"))
    payload = pattern_payload("SO-7-tee-M", data, size="M",
                              placement={"spacing_mm": 6.0})
    target = target_for(load_profile("grbl-knife"))
    # What the station will compute for this job (it is deterministic).
    plan = plan_pattern(pattern_job("SO-7-tee-M", data, size="M",
                                    placement={"spacing_mm": 6.0}), target)
    compiled = compile_for_target(plan.job, target)
    async with grbl_rig(tmp_path, broker, latency_s=0.001, profile="grbl-knife") as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit(payload)
        end = await planner.wait_terminal("SO-7-tee-M", timeout=150)
        assert end["event"] == "succeeded", end
    accepted = next(e for e in planner.events_for("SO-7-tee-M") if e["event"] == "accepted")
    detail = accepted["detail"]["pattern"]
    assert detail["size"] == "M" and detail["units"] == "in"
    assert detail["pieces"][2] == {"name": "SLEEVE", "copies": 2}
    assert 0.5 < detail["utilisation"] < 1.0
    assert detail["skipped"]["drill_holes"] == {
        "count": 2, "why": "grbl-knife has no pen, laser or punch tool (no 'draw' operation)"}
    assert detail["skipped"]["internal_lines"]["count"] == 1
    assert detail["skipped"]["annotations"]["count"] == 5
    assert emulator.executed == [*compiled.lines, "G4P0"]
    # The machine's record, read back: each placed outline is cut, within the blade offset.
    cuts = [s.points for s in parse_for_target(emulator.executed[:-1], target)
            if s.kind is StrokeKind.CUT]
    knife = target.settings.knife
    assert knife is not None
    assert len(plan.outlines) == 5
    for key, outline in plan.outlines.items():
        assert cut_traces_outline(cuts, outline, knife.blade_offset_mm + 0.01), key


async def test_pattern_pieces_are_plotted_on_the_hpgl_plotter(tmp_path: Path,
                                                               broker: Broker) -> None:
    data = tshirt_dxf(("M",))
    # A doll's front, sleeve and neckband (the file read as centimetres) fit the A3 plotter.
    fields = {"size": "M", "units": "cm",
              "pieces": [{"name": "FRONT"}, {"name": "SLEEVE", "copies": 1}, {"name": "NECKBAND"}],
              "placement": {"spacing_mm": 3.0, "margin_mm": 3.0}}
    target = target_for(load_profile("hpgl-7475a"))
    plan = plan_pattern(pattern_job("tee-plot", data, **fields), target)
    async with hpgl_rig(tmp_path, broker, baud=115_200, pen_speed_mm_s=4000.0) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit(pattern_payload("tee-plot", data, **fields))
        end = await planner.wait_terminal("tee-plot", timeout=150)
        assert end["event"] == "succeeded", end
    accepted = next(e for e in planner.events_for("tee-plot") if e["event"] == "accepted")
    skipped = accepted["detail"]["pattern"]["skipped"]
    # A pen plotter draws internal lines and drill marks; only the text labels are left out.
    assert list(skipped) == ["annotations"] and skipped["annotations"]["count"] == 3
    toolpaths = plan.job.toolpaths
    assert toolpaths is not None
    assert sum(p.op.value == "draw" for p in toolpaths.paths) == 2 * 2 + 1
    assert emulator.overflow_errors == 0
    unit = 1.0 / target.settings.units_per_mm
    strokes = [[(x * unit, y * unit) for x, y in s.points] for s in emulator.strokes]
    assert len(plan.outlines) == 3
    for key, outline in plan.outlines.items():
        assert cut_traces_outline(strokes, outline, unit), key


async def test_a_broken_pattern_is_rejected_naming_where(tmp_path: Path, broker: Broker) -> None:
    async with grbl_rig(tmp_path, broker, latency_s=0.001, profile="grbl-knife") as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit(pattern_payload("gap-1", tshirt_dxf(("M",), gap_in=0.2)))
        end = await planner.wait_terminal("gap-1", timeout=60)
    assert end["event"] == "rejected", end
    error = end["detail"]["error"]
    assert error["code"] == "bad_pattern"
    assert error["where"] == "block FRONT_M, layer 1"
    assert "does not close" in error["message"]
    assert emulator.executed == []


async def test_svg_job_is_cut_on_the_grbl_knife(tmp_path: Path, broker: Broker) -> None:
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="300mm" height="200mm" '
           'viewBox="0 0 300 200"><g id="pocket"><rect x="20" y="20" width="120" height="80" '
           'rx="10" stroke="#000000" fill="none"/></g><circle cx="220" cy="100" r="40" '
           'stroke="#ff0000"/><path d="M 20 180 L 280 180" stroke="#0000ff"/></svg>')
    payload = {"job_id": "svg-knife-1", "kind": "svg",
               "svg": {"data": svg, "layers": {"#0000ff": "skip"}}, "origin_mm": [10.0, 10.0]}
    async with grbl_rig(tmp_path, broker, latency_s=0.001, profile="grbl-knife") as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit(payload)
        end = await planner.wait_terminal("svg-knife-1", timeout=120)
        assert end["event"] == "succeeded", end
    accepted = next(e for e in planner.events_for("svg-knife-1") if e["event"] == "accepted")
    assert accepted["detail"]["svg"]["paths"] == {"cut": 2}
    assert accepted["detail"]["svg"]["skipped"]["count"] == 1
    target = target_for(load_profile("grbl-knife"))
    cuts = [s.points for s in parse_for_target(emulator.executed[:-1], target)
            if s.kind is StrokeKind.CUT]
    knife = target.settings.knife
    assert knife is not None
    # the circle: centre (220, 200 - 100) in the drawing, moved by the origin
    circle = [(230.0 + 40.0 * math.cos(a / 50 * math.pi), 110.0 + 40.0 * math.sin(a / 50 * math.pi))
              for a in range(100)]
    assert cut_traces_outline(cuts, circle, knife.blade_offset_mm + 0.1)
