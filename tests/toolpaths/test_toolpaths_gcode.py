"""G-code output: GRBL laser and knife, Marlin, servo pens; order, passes, copies, placement."""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from typing import Any

import pytest

from agent.dialects.grbl import prepare_grbl_program
from agent.dialects.marlin import prepare_marlin_program
from agent.profiles import load_profile
from agent.profiles.grbl import GrblProfile
from agent.profiles.marlin import MarlinProfile
from agent.profiles.toolpath import ToolpathSettings
from agent.toolpaths import (
    Dialect,
    MachineTarget,
    StrokeKind,
    compile_for_target,
    compile_toolpaths,
    parse_back,
    parse_for_target,
    plan_for_target,
    target_for,
)
from tests.toolpaths.garments import care_label_paths, job, path, sleeve, tshirt_paths

KNIFE = load_profile("grbl-knife")
LASER = load_profile("grbl-laser")
WORD_LINE = re.compile(r"^(?:[A-Z][+-]?\d+(?:\.\d+)?)+$")


def labels(**extra: Any) -> list[str]:
    return list(compile_toolpaths(job(care_label_paths(), **extra), LASER).lines)


def test_grbl_lines_are_normalised_as_the_driver_sends_them() -> None:
    for profile, paths in ((LASER, care_label_paths()), (KNIFE, tshirt_paths())):
        assert isinstance(profile, GrblProfile)
        program = compile_toolpaths(job(paths), profile)
        for line in program.lines:
            assert WORD_LINE.match(line), line
            assert len(line) <= profile.grbl.max_line_chars
        assert program.source_lines == tuple(range(1, len(program) + 1))
        # The GRBL dialect's own validator takes the program unchanged.
        assert prepare_grbl_program("\n".join(program.lines), profile).lines == program.lines


def test_laser_runs_under_m4_with_air_assist_and_ends_beam_off() -> None:
    lines = labels()
    assert lines[:4] == ["G21", "G90", "M4S0", "M8"]
    assert lines[-2:] == ["M5", "M9"]


def test_laser_beam_is_off_on_every_travel() -> None:
    """Replay S and motion: every G0 move runs at S0 (even were laser mode off)."""
    power = None
    motion = None
    travels = 0
    for line in labels(copies=3):
        words = dict(re.findall(r"([A-Z])([-\d.]+)", line))
        if "S" in words:
            power = float(words["S"])
        if "G" in words and words["G"] in ("0", "1"):
            motion = words["G"]
        if ("X" in words or "Y" in words) and motion == "0":
            travels += 1
            assert power == 0.0, line
    assert travels >= 9


def test_laser_power_is_scaled_to_s_max_and_overridden_per_job_and_path() -> None:
    strokes = parse_back(labels(), LASER)
    cuts = [s for s in strokes if s.kind is StrokeKind.CUT]
    # Profile defaults: draw 15 %, cut 85 % of S1000.
    assert [c.power_pct for c in cuts] == [15.0, 15.0, 85.0]
    assert "S850" in "".join(labels())
    paths = care_label_paths()
    paths[2]["settings"] = {"power_pct": 70.0, "speed_mm_s": 10.0}
    tuned = job(paths)
    data = tuned.model_dump()
    data["toolpaths"]["settings"] = {"power_pct": 40.0}
    lines = compile_toolpaths(type(tuned).model_validate(data, strict=False), LASER).lines
    cuts = [s for s in parse_back(lines, LASER) if s.kind is StrokeKind.CUT]
    assert [c.power_pct for c in cuts] == [40.0, 40.0, 70.0]
    assert cuts[2].speed_mm_s == 10.0
    assert any(line.endswith("F600S700") for line in lines)


def test_constant_power_laser_uses_m3() -> None:
    settings = LASER.toolpath
    assert settings is not None
    assert settings.laser is not None
    constant = settings.model_copy(
        update={"laser": settings.laser.model_copy(update={"dynamic_power": False})}
    )
    target = dataclasses.replace(target_for(LASER), settings=constant)
    lines = compile_for_target(job(care_label_paths()), target).lines
    assert lines[2] == "M3S0"


def test_knife_cuts_inside_out_score_and_keyhole_before_the_front() -> None:
    plan = plan_for_target(job(tshirt_paths()), target_for(KNIFE))
    order = [p.source for p in plan]
    # 0 front, 1 keyhole, 2 grain score, 3 back, 4 and 5 sleeves.
    assert sorted(order) == [0, 1, 2, 3, 4, 5]
    assert order.index(1) < order.index(0)
    assert order.index(2) < order.index(0)


def test_inside_out_holds_whatever_the_order_in_the_job() -> None:
    paths = tshirt_paths()
    reversed_job = job(list(reversed(paths)))  # front listed last, keyhole next to last...
    plan = plan_for_target(reversed_job, target_for(KNIFE))
    order = [len(paths) - 1 - p.source for p in plan]
    assert order.index(1) < order.index(0)
    assert order.index(2) < order.index(0)


def test_nearest_piece_next_keeps_travel_short() -> None:
    """Eight sleeves in a 4 x 2 grid: the nearest-next order travels far less than job order."""
    paths = [
        path([(x + 10.0 + 390.0 * (i % 4), y + 10.0 + 250.0 * (i // 4)) for x, y in sleeve()])
        for i in (0, 7, 2, 5, 4, 3, 6, 1)
    ]
    strokes = parse_back(compile_toolpaths(job(paths), KNIFE).lines, KNIFE)
    travel = sum(
        math.dist(a, b)
        for s in strokes
        if s.kind is StrokeKind.TRAVEL
        for a, b in zip(s.points, s.points[1:], strict=False)
    )
    starts = [p["points"][0] for p in paths]
    job_order = sum(math.dist(a, b) for a, b in itertools.pairwise(starts))
    assert travel < job_order / 2


def test_knife_travels_only_with_the_blade_up_and_cuts_only_down() -> None:
    lines = compile_toolpaths(job(tshirt_paths()), KNIFE).lines
    z = None
    motion = None
    cut_moves = 0
    for line in lines:
        words = dict(re.findall(r"([A-Z])([-\d.]+)", line))
        if "G" in words:
            motion = words["G"]
        if "Z" in words:
            z = float(words["Z"])
        if "X" in words or "Y" in words:
            if motion == "0":
                assert z == 5.0, line
            else:
                assert z is not None, line
                assert z < 0, line
                cut_moves += 1
    assert cut_moves > 300
    assert lines[-1] == "G0Z5"


def test_score_goes_shallower_than_cut() -> None:
    lines = compile_toolpaths(job(tshirt_paths()), KNIFE).lines
    plunges = [line for line in lines if line.startswith("G1Z")]
    assert plunges[0].startswith("G1Z-0.5")  # the grain line is scored first
    assert all(p.startswith("G1Z-1.5") for p in plunges[1:])


def test_closed_pieces_are_overcut_and_blade_offset() -> None:
    sleeve_job = job([path(sleeve())], origin_mm=[100.0, 100.0])
    cuts = [
        s
        for s in parse_back(compile_toolpaths(sleeve_job, KNIFE).lines, KNIFE)
        if s.kind is StrokeKind.CUT
    ]
    assert len(cuts) == 1
    points = cuts[0].points
    # Starts at the nearest corner (140, 100), 0.25 mm along the hem: the axis leads the tip.
    assert points[0] == (140.25, 100.0)
    # Ends 1.5 mm (overcut) + 0.25 mm (blade offset) past the start, still along the hem.
    assert points[-1] == (141.75, 100.0)
    # Sharp corners get swivel arcs: points 0.25 mm from the corner at (440, 100).
    near_corner = [
        p for p in points if math.dist(p, (440.0, 100.0)) == pytest.approx(0.25, abs=1e-3)
    ]
    assert len(near_corner) >= 3


def test_passes_repeat_each_piece_before_the_next() -> None:
    twice = job([path(sleeve(), passes=2), path(sleeve(), passes=1)], origin_mm=[10.0, 10.0])
    data = twice.model_dump()
    data["toolpaths"]["paths"][1]["points"] = [
        (x + 400.0, y) for x, y in data["toolpaths"]["paths"][1]["points"]
    ]
    data["toolpaths"]["repeat_same_place"] = True  # two passes of a knife: asked for
    twice = type(twice).model_validate(data, strict=False)
    cuts = [
        s
        for s in parse_back(compile_toolpaths(twice, KNIFE).lines, KNIFE)
        if s.kind is StrokeKind.CUT
    ]
    assert len(cuts) == 3
    assert cuts[0].points == cuts[1].points
    assert cuts[2].points[0][0] > 400.0


def test_copies_are_spaced_by_the_bounding_box_and_the_spacing() -> None:
    two = job([path(sleeve())], copies=2, spacing_mm=15.0, origin_mm=[20.0, 30.0])
    plan = plan_for_target(two, target_for(KNIFE))
    xs = {p.copy: min(x for x, _ in p.tip) for p in plan}
    assert xs[0] == pytest.approx(20.0)
    assert xs[1] == pytest.approx(20.0 + 380.0 + 15.0)


def test_rotation_turns_the_job_about_its_origin() -> None:
    turned = job([path(sleeve())], rotation_deg=90.0, origin_mm=[500.0, 50.0])
    (piece,) = plan_for_target(turned, target_for(KNIFE))
    xs = [x for x, _ in piece.tip]
    ys = [y for _, y in piece.tip]
    # 380 x 230 mm turned a quarter: 230 wide (x from 500 - 230), 380 high (y from 50).
    assert (min(xs), max(xs)) == pytest.approx((270.0, 500.0))
    assert (min(ys), max(ys)) == pytest.approx((50.0, 430.0))


def marlin_target(profile_name: str) -> MachineTarget:
    """A GRBL profile's machine as if it ran Marlin (there is no Marlin laser profile)."""
    base = target_for(load_profile(profile_name))
    return dataclasses.replace(base, dialect=Dialect.MARLIN, max_line_chars=80)


def test_marlin_knife_lines_are_plain_gcode_and_read_back_as_planned() -> None:
    profile = load_profile("marlin-2")
    assert isinstance(profile, MarlinProfile)
    target = target_for(profile)
    assert target.dialect is Dialect.MARLIN
    assert target.max_line_chars == profile.marlin.max_line_chars
    sleeves = job([path(sleeve()), path(sleeve())], copies=1, origin_mm=[10.0, 10.0])
    data = sleeves.model_dump()
    # The second sleeve at half size (a child size), beside the first.
    data["toolpaths"]["paths"][1]["points"] = [(x * 0.5 + 390.0, y * 0.5) for x, y in sleeve()]
    sleeves = type(sleeves).model_validate(data, strict=False)
    lines = compile_toolpaths(sleeves, profile).lines
    for line in lines:
        assert not line.startswith("N")
        assert "*" not in line
        assert len(line) <= profile.marlin.max_line_chars
        if re.search(r"[XY]", line):
            assert line.startswith(("G0 ", "G1 ")), line  # Marlin has no modal motion
    assert "G0 Z5 F600" in lines
    # The Marlin dialect's own validator takes the program unchanged.
    assert prepare_marlin_program("\n".join(lines), profile).lines == lines
    cuts = [s for s in parse_back(lines, profile) if s.kind is StrokeKind.CUT]
    plan = plan_for_target(sleeves, target)
    assert len(cuts) == len(plan) == 2
    for stroke, planned in zip(cuts, plan, strict=True):
        assert len(stroke.points) == len(planned.routes[0])
        for got, want in zip(stroke.points, planned.routes[0], strict=True):
            assert math.dist(got, want) <= 0.001
    # Feed is modal and shared by G0 and G1 in Marlin: every cut after a travel restates it.
    feed = None
    for line in lines:
        words = dict(re.findall(r"([A-Z])([-\d.]+)", line))
        feed = words.get("F", feed)
        if line.startswith("G0 X"):
            assert feed == "6000", line
        elif line.startswith("G1 X"):
            assert feed == "1800", line


def test_marlin_laser_switches_the_beam_per_cut() -> None:
    target = marlin_target("grbl-laser")
    lines = compile_for_target(job(care_label_paths()), target).lines
    beam = False
    for line in lines:
        if line.startswith(("M3 ", "M4 ")):
            beam = True
        elif line == "M5":
            beam = False
        elif line.startswith("G0"):
            assert not beam, line
    assert sum(1 for line in lines if line.startswith("M4 S")) == 3
    assert lines[-2:] == ("M5", "M9")


def test_servo_pen_lifts_with_its_own_commands_and_waits() -> None:
    base = target_for(KNIFE)
    pen = ToolpathSettings.model_validate(
        {
            "machine": "pen",
            "speed_mm_s": 80.0,
            "lift": {
                "method": "servo",
                "servo_up": "M3 S0",
                "servo_down": "M3 S600",
                "servo_dwell_s": 0.15,
            },
        }
    )
    target = dataclasses.replace(base, settings=pen)
    marker = job([path(sleeve(), op="draw")], origin_mm=[10.0, 10.0])
    lines = compile_for_target(marker, target).lines
    down = lines.index("M3S600")
    assert lines[down + 1] == "G4P0.15"
    assert lines[-2:] == ("M3S0", "G4P0.15")
    cuts = [s for s in parse_for_target(lines, target) if s.kind is StrokeKind.CUT]
    assert len(cuts) == 1
    assert cuts[0].speed_mm_s == 80.0
    assert len(cuts[0].points) == len(sleeve()) + 1


def test_servo_dwell_is_milliseconds_on_marlin() -> None:
    """Marlin's G4 P is milliseconds (G4.cpp), GRBL's seconds: 0.15 s is P150 on Marlin, where
    P0.15 would dwell 0 ms and cut before the blade is down."""
    pen = ToolpathSettings.model_validate(
        {
            "machine": "pen",
            "speed_mm_s": 80.0,
            "lift": {"method": "servo", "servo_up": "M3 S0", "servo_down": "M3 S200",
                     "servo_dwell_s": 0.15},
        }
    )
    target = dataclasses.replace(marlin_target("grbl-knife"), settings=pen)
    lines = compile_for_target(job([path(sleeve(), op="draw")]), target).lines
    down = lines.index("M3 S200")
    assert lines[down + 1] == "G4 P150"
    assert lines[-1] == "G4 P150"
