"""The planner model against motion worked out by hand from GRBL's planner rules."""

from __future__ import annotations

import math

import pytest

from agent.estimate import estimate_grbl
from agent.estimate.gcode_moves import read_motion
from agent.estimate.planner import MachineLimits, StraightMove, plan_seconds
from agent.transport.grbl_flow import Setting, parse_reply

LIMITS = MachineLimits(max_rate_mm_min=(6000.0, 6000.0, 600.0), accel_mm_s2=(500.0, 500.0, 50.0),
                       junction_deviation_mm=0.01)


def test_one_long_move_is_a_trapezoid() -> None:
    # 100 mm at 3000 mm/min = 50 mm/s, a = 500: ramps of 0.1 s and 2.5 mm each.
    seconds = plan_seconds([StraightMove((100.0, 0.0, 0.0), 3000.0)], LIMITS)
    assert seconds == pytest.approx(0.1 + 95.0 / 50.0 + 0.1)


def test_a_short_move_is_a_triangle() -> None:
    # 1 mm cannot reach 50 mm/s (needs 5 mm): peak sqrt(a * d) = sqrt(500).
    seconds = plan_seconds([StraightMove((1.0, 0.0, 0.0), 3000.0)], LIMITS)
    assert seconds == pytest.approx(2 * math.sqrt(500.0) / 500.0)


def test_a_diagonal_is_capped_by_each_axis() -> None:
    # Z limits a 45-degree XZ move: 600 mm/min on Z means 600 * sqrt(2) along the path.
    move = StraightMove((10.0, 0.0, 10.0), None)
    seconds = plan_seconds([move], LIMITS)
    rate = 600.0 * math.sqrt(2) / 60.0
    accel = 50.0 * math.sqrt(2)
    ramp_d = rate * rate / (2 * accel)
    length = 10.0 * math.sqrt(2)
    assert seconds == pytest.approx(2 * rate / accel + (length - 2 * ramp_d) / rate)


def test_straight_segments_run_like_one_move_within_the_horizon() -> None:
    pieces = [StraightMove((10.0, 0.0, 0.0), 3000.0)] * 10
    joined = plan_seconds([StraightMove((100.0, 0.0, 0.0), 3000.0)], LIMITS)
    assert plan_seconds(pieces, LIMITS) == pytest.approx(joined)


def test_a_reversal_stops_between_the_moves() -> None:
    there_and_back = [StraightMove((100.0, 0.0, 0.0), 3000.0),
                      StraightMove((-100.0, 0.0, 0.0), 3000.0)]
    one = plan_seconds([StraightMove((100.0, 0.0, 0.0), 3000.0)], LIMITS)
    assert plan_seconds(there_and_back, LIMITS) == pytest.approx(2 * one)


def test_a_right_angle_corner_slows_to_the_junction_speed() -> None:
    corner = [StraightMove((100.0, 0.0, 0.0), 3000.0), StraightMove((0.0, 100.0, 0.0), 3000.0)]
    # cos(theta) = 0: sin(theta/2) = sqrt(0.5); junction acceleration along (-1, 1)/sqrt(2)
    # is 500 * sqrt(2) capped by each axis: 500 / (1/sqrt(2)) = 707.1.
    s = math.sqrt(0.5)
    v_j = math.sqrt(500.0 * math.sqrt(2) * 0.01 * s / (1 - s))
    ramp = (50.0 - v_j) / 500.0
    ramp_d = (50.0**2 - v_j**2) / 1000.0
    one_side = 0.1 + (100.0 - 2.5 - ramp_d) / 50.0 + ramp
    assert plan_seconds(corner, LIMITS) == pytest.approx(2 * one_side)


def test_short_segments_are_slowed_by_the_planner_horizon() -> None:
    # 0.2 mm segments at 6000 mm/min: 15 blocks hold 3 mm, so the machine cannot exceed
    # sqrt(2 * 500 * 2.8) = 52.9 mm/s, well under the 100 mm/s asked for.
    segments = [StraightMove((0.2, 0.0, 0.0), 6000.0)] * 2000
    seconds = plan_seconds(segments, LIMITS)
    assert 400.0 / 100.0 < 400.0 / 53.0 < seconds
    unbounded = MachineLimits(LIMITS.max_rate_mm_min, LIMITS.accel_mm_s2, 0.01,
                              horizon_blocks=10_000)
    assert plan_seconds(segments, unbounded) < seconds


def test_reading_gcode_counts_dwells_units_and_relative_moves() -> None:
    motion = read_motion(["G21 G90", "G0 X10 (travel)", "G1 Y10 F1200", "G4 P1.5",
                          "G91 G1 X-10", "G20 G1 Y-0.5; inches", "M5"])
    assert motion.dwell_s == pytest.approx(1.5)
    moves = [m for segment in motion.segments for m in segment]
    assert [m.delta_mm for m in moves] == [(10.0, 0.0, 0.0), (0.0, 10.0, 0.0),
                                           (-10.0, 0.0, 0.0), (0.0, -12.7, 0.0)]
    assert moves[0].feed_mm_min is None
    assert moves[3].feed_mm_min == pytest.approx(1200.0)  # F stays in mm/min until re-set
    assert motion.unread_lines == 0


def test_an_arc_is_cut_into_grbl_chords() -> None:
    # A half circle of radius 10 with $12 = 0.002: floor(0.5 * pi * 10 / sqrt(0.002 * 19.998))
    motion = read_motion(["G1 X20 F600", "G2 X0 Y0 I-10 J0"], arc_tolerance_mm=0.002)
    moves = motion.segments[0][1:]
    expected = math.floor(0.5 * math.pi * 10 / math.sqrt(0.002 * (20 - 0.002)))
    assert len(moves) == expected
    end = [sum(m.delta_mm[i] for m in motion.segments[0]) for i in range(3)]
    assert end == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    # G2 runs clockwise: from (20, 0) around (10, 0) it passes through (10, -10).
    y = 0.0
    lowest = 0.0
    for m in motion.segments[0][1:]:
        y += m.delta_mm[1]
        lowest = min(lowest, y)
    assert lowest == pytest.approx(-10.0, abs=0.01)


def test_a_line_it_cannot_read_is_counted() -> None:
    motion = read_motion(["G1 X10 F600", "G1 X1.2.3", "G38.2 Z-5 F100", "G28"])
    assert motion.unread_lines == 3



def test_the_station_estimate_needs_the_machines_settings() -> None:
    assert estimate_grbl(["G1 X10 F600"], {}) is None
    caps = {"planner_blocks": 15, "motion": {
        "max_rate_mm_min": [6000.0, 6000.0, 600.0], "accel_mm_s2": [500.0, 500.0, 50.0],
        "junction_deviation_mm": 0.01, "arc_tolerance_mm": 0.002}}
    estimate = estimate_grbl(["G1 X100 F3000", "G4 P2"], caps)
    assert estimate is not None
    assert estimate.seconds == pytest.approx(0.1 + 95.0 / 50.0 + 0.1 + 2.0)
    assert estimate.as_detail()["estimated_s"] == pytest.approx(4.1)
    partial = estimate_grbl(["G1 X100 F3000", "G28"], caps)
    assert partial is not None
    assert "1 lines with motion it does not model" in partial.basis


def test_settings_report_lines_are_read_as_settings() -> None:
    assert parse_reply("$110=8000.000") == Setting(110, "8000.000")
    assert parse_reply("$N0=G21") != Setting(0, "G21")  # a startup line, not a setting


def test_remaining_time_follows_the_lines_done() -> None:
    caps = {"planner_blocks": 15, "motion": {
        "max_rate_mm_min": [6000.0, 6000.0, 600.0], "accel_mm_s2": [500.0, 500.0, 50.0],
        "junction_deviation_mm": 0.01, "arc_tolerance_mm": 0.002}}
    estimate = estimate_grbl(["G21 G90", "G1 X100 F3000", "G4 P2", "G1 X0"], caps)
    assert estimate is not None
    one_move = 0.1 + 95.0 / 50.0 + 0.1
    assert estimate.remaining_after(0) == pytest.approx(2 * one_move + 2)
    assert estimate.remaining_after(1) == pytest.approx(2 * one_move + 2)  # G21 G90 takes none
    assert estimate.remaining_after(2) == pytest.approx(one_move + 2)
    assert estimate.remaining_after(3) == pytest.approx(one_move)
    assert estimate.remaining_after(4) == 0.0
    assert estimate.remaining_after(99) == 0.0
