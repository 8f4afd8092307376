"""Property tests: compile then read back gives the planned geometry; nothing leaves the bed."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent.profiles import load_profile
from agent.schemas.job import JobRequest
from agent.toolpaths import (
    BedLimits,
    Dialect,
    MachineTarget,
    PlannedPath,
    Stroke,
    StrokeKind,
    ToolpathBoundsError,
    compile_for_target,
    parse_for_target,
    plan_for_target,
    target_for,
)
from agent.toolpaths.geometry import distance_to_polyline, drop_repeats, open_ring, transform

PROFILES = ["grbl-laser", "grbl-knife", "marlin-2", "hpgl-7475a", "roland-camm-gl3"]
TARGETS = {name: target_for(load_profile(name)) for name in PROFILES}


@st.composite
def paths(draw: st.DrawFn, size: float) -> dict[str, Any]:
    coord = st.floats(min_value=0, max_value=size).map(lambda v: round(v, 3))
    closed = draw(st.booleans())
    pts = draw(st.lists(st.tuples(coord, coord), min_size=3 if closed else 2, max_size=12))
    distinct = min(len(open_ring(pts)), len(set(pts))) if closed else len(drop_repeats(pts))
    if distinct < (3 if closed else 2):
        pts = [(0.0, 0.0), (40.0, 0.0), (40.0, 25.0)]
    op = draw(st.sampled_from(["cut", "score"]))
    return {"points": [list(p) for p in pts], "closed": closed, "op": op}


@st.composite
def jobs(draw: st.DrawFn, bed: tuple[float, float], origin: tuple[float, float]) -> JobRequest:
    """Random paths about a third of the bed in size, placed from just off the bed's corner
    (``origin`` is the lowest origin drawn) to well inside it."""
    width, height = bed
    data = {
        "job_id": "prop-0001",
        "kind": "toolpaths",
        "toolpaths": {
            "paths": draw(st.lists(paths(min(width, height) / 3), min_size=1, max_size=5)),
            "settings": {"passes": draw(st.integers(1, 2))},
            # Passes and copies that meet are drawn on purpose: the geometry is under test
            # here, the guard against repeats in test_toolpaths_repeats.py.
            "repeat_same_place": True,
        },
        "copies": draw(st.integers(1, 3)),
        "spacing_mm": draw(st.floats(0, 20).map(lambda v: round(v, 2))),
        "origin_mm": [
            draw(st.floats(origin[0], origin[0] + width * 0.6)),
            draw(st.floats(origin[1], origin[1] + height * 0.6)),
        ],
        "rotation_deg": draw(st.sampled_from([0.0, 90.0, -30.0, 180.0, 12.5])),
    }
    return JobRequest.model_validate_json(json.dumps(data))


def jobs_for(name: str) -> st.SearchStrategy[JobRequest]:
    limits = TARGETS[name].limits
    bed = (limits.width_mm, limits.height_mm)
    return jobs(bed, (-0.05 * bed[0], -0.05 * bed[1]))


def cut_strokes(strokes: list[Stroke]) -> list[Stroke]:
    return [s for s in strokes if s.kind is StrokeKind.CUT]


def quantised(
    points: tuple[tuple[float, float], ...], units_per_mm: float
) -> list[tuple[tuple[int, int], tuple[float, float]]]:
    """(machine units, planned mm) of each point the machine is sent: repeats in machine units
    dropped, as the emitters do."""
    out: list[tuple[tuple[int, int], tuple[float, float]]] = []
    for x, y in points:
        q = (round(x * units_per_mm), round(y * units_per_mm))
        if not out or q != out[-1][0]:
            out.append((q, (x, y)))
    return out


def assert_readback_matches_plan(
    strokes: list[Stroke], plan: list[PlannedPath], target: MachineTarget
) -> None:
    """Each pass of each planned path is one cut stroke, equal within one machine unit."""
    unit = target.limits.unit_mm
    # Where a pass starts exactly where the last one ended and nothing lifts in between (GRBL
    # laser, HP-GL), the machine cuts on without a break and the reader sees one stroke.
    continuous = target.dialect is Dialect.HPGL or (
        target.dialect is Dialect.GRBL and target.settings.laser is not None
    )
    expected: list[list[tuple[tuple[int, int], tuple[float, float]]]] = []
    end: tuple[int, int] | None = None
    last_key: tuple[float, float] | None = None
    for path in plan:
        key = (path.settings.speed_mm_s, path.settings.power_pct)
        assert len(path.routes) == path.settings.passes
        for route in path.routes:
            q = quantised(route, target.settings.units_per_mm)
            if len(q) < 2:  # shorter than the machine's resolution: nothing is cut
                if q[0][0] != end:
                    last_key = None
                end = q[-1][0]
                continue
            if continuous and expected and end == q[0][0] and last_key == key:
                expected[-1] += q[1:]
            else:
                expected.append(q)
            end, last_key = q[-1][0], key
    cuts = cut_strokes(strokes)
    assert len(cuts) == len(expected)
    for stroke, want in zip(cuts, expected, strict=True):
        got = stroke.points
        assert len(got) == len(want)
        for (gx, gy), (_, (wx, wy)) in zip(got, want, strict=True):
            # Rounding moves a point by half a unit at most; one unit is the promise.
            assert abs(gx - wx) <= unit
            assert abs(gy - wy) <= unit


def assert_tips_follow_job(job: JobRequest, plan: list[PlannedPath]) -> None:
    """Copy 0 of every path is the job's path turned and placed, started anywhere on a ring or
    from either end of an open path; other copies are the same shapes moved as one."""
    assert job.toolpaths is not None
    placed = {}
    for i, src in enumerate(job.toolpaths.paths):
        pts = transform(src.points, job.rotation_deg, *job.origin_mm)
        placed[i] = open_ring(pts) if src.closed else drop_repeats(pts)
    shifts: dict[int, tuple[float, float]] = {}
    seen = set()
    for p in plan:
        seen.add((p.source, p.copy))
        want = placed[p.source]
        # A closed tip returns to its start and may run on (overcut): compare the ring.
        tip = list(p.tip[: len(want)]) if p.closed else list(p.tip)
        if p.closed:
            assert p.tip[len(want)] == p.tip[0]
        assert len(tip) == len(want)
        shift = (tip[0][0] - want[0][0], tip[0][1] - want[0][1])
        # Find the rotation/reversal that makes tip a translate of want.
        candidates = (
            [want[k:] + want[:k] for k in range(len(want))] if p.closed else [want, want[::-1]]
        )
        match = None
        for cand in candidates:
            dx, dy = tip[0][0] - cand[0][0], tip[0][1] - cand[0][1]
            if all(
                math.isclose(a[0] - b[0], dx, abs_tol=1e-6)
                and math.isclose(a[1] - b[1], dy, abs_tol=1e-6)
                for a, b in zip(tip, cand, strict=True)
            ):
                match = (dx, dy)
                break
        assert match is not None, f"path {p.source} copy {p.copy} is not the job's shape"
        shift = match
        if p.copy == 0:
            assert math.isclose(shift[0], 0.0, abs_tol=1e-6)
            assert math.isclose(shift[1], 0.0, abs_tol=1e-6)
        if p.copy in shifts:
            assert math.isclose(shifts[p.copy][0], shift[0], abs_tol=1e-6)
            assert math.isclose(shifts[p.copy][1], shift[1], abs_tol=1e-6)
        shifts[p.copy] = shift
    assert seen == {(i, c) for i in placed for c in range(job.copies)}


def assert_inside_bed(strokes: list[Stroke], target: MachineTarget) -> None:
    width, height = target.limits.width_mm, target.limits.height_mm
    for s in strokes:
        for x, y in s.points:
            assert 0.0 <= x <= width
            assert 0.0 <= y <= height


@pytest.mark.parametrize("name", PROFILES)
def test_compile_then_parse_back_gives_the_plan_or_an_out_of_bounds_rejection(name: str) -> None:
    target = TARGETS[name]

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(job=jobs_for(name))
    def check(job: JobRequest) -> None:
        try:
            program = compile_for_target(job, target)
        except ToolpathBoundsError as exc:
            event("rejected: out of bounds")
            rejection: ToolpathBoundsError = exc
            assert rejection.code == "out_of_bounds"
            # Rightly: the same job, unchecked, does leave the bed, by the extent reported.
            loose = plan_for_target(job, target, check_bed=False)
            xs = [x for p in loose for r in p.routes for x, _ in r]
            ys = [y for p in loose for r in p.routes for _, y in r]
            assert (min(xs), min(ys), max(xs), max(ys)) == pytest.approx(rejection.extent_mm)
            slack = target.limits.unit_mm * 0.49
            assert (
                min(xs) < -slack
                or min(ys) < -slack
                or max(xs) > target.limits.width_mm + slack
                or max(ys) > target.limits.height_mm + slack
            )
            return
        event("compiled")
        plan = plan_for_target(job, target)
        strokes = parse_for_target(program.lines, target)
        assert_inside_bed(strokes, target)
        assert_readback_matches_plan(strokes, plan, target)
        assert_tips_follow_job(job, plan)

    check()


@pytest.mark.parametrize("name", ["grbl-knife", "marlin-2", "roland-camm-gl3"])
def test_blade_offset_output_follows_the_offset_path(name: str) -> None:
    target = TARGETS[name]
    knife = target.settings.knife
    assert knife is not None
    d = knife.blade_offset_mm
    # A boundless bed, jobs well away from its corner: nothing is rejected here.
    big = dataclasses.replace(target, limits=BedLimits(1e9, 1e9, target.limits.unit_mm))

    @settings(max_examples=50, deadline=None)
    @given(job=jobs((500.0, 500.0), (400.0, 400.0)))
    def check(job: JobRequest) -> None:
        plan = plan_for_target(job, big)
        blade = (1.0, 0.0)  # where the blade points before the job's first cut
        for p in plan:
            for route in p.routes:
                # The holder's axis never strays further than the blade offset from the cut line.
                for q in route:
                    assert distance_to_polyline(q, p.tip) <= d + 1e-6
                # It goes down one offset from the cut's start, the way the blade points...
                (ax, ay), (bx, by) = drop_repeats(p.tip)[:2]
                length = math.dist((ax, ay), (bx, by))
                ahead = (ax + (bx - ax) / length * d, ay + (by - ay) / length * d)
                behind_blade = (ax + blade[0] * d, ay + blade[1] * d)
                turn = math.degrees(
                    math.acos(
                        max(-1.0, min(1.0, (blade[0] * (bx - ax) + blade[1] * (by - ay)) / length))
                    )
                )
                if turn > knife.corner_threshold_deg + 1e-6:
                    # ...and swivels the blade round about the start before cutting on.
                    assert math.dist(route[0], behind_blade) <= 1e-6
                    assert ahead in route
                elif turn < knife.corner_threshold_deg - 1e-6:
                    assert math.dist(route[0], ahead) <= 1e-6
                else:  # on the threshold, rounding decides
                    assert (
                        min(math.dist(route[0], ahead), math.dist(route[0], behind_blade)) <= 1e-6
                    )
                # It ends one offset beyond the cut's end, along the last direction.
                (ax, ay), (bx, by) = drop_repeats(p.tip)[-2:]
                length = math.dist((ax, ay), (bx, by))
                end = (bx + (bx - ax) / length * d, by + (by - ay) / length * d)
                assert math.dist(route[-1], end) <= 1e-6
                blade = ((bx - ax) / length, (by - ay) / length)
            # Closed pieces are cut on past their start by the overcut (at most one lap).
            if p.closed:
                assert job.toolpaths is not None
                n = len(open_ring(job.toolpaths.paths[p.source].points))
                assert p.tip[n] == p.tip[0]
                perimeter = _length(p.tip[: n + 1])
                assert _length(p.tip[n:]) == pytest.approx(
                    min(knife.overcut_mm, perimeter), abs=1e-6
                )
        # What the machine is told is that offset route, within one machine unit.
        strokes = parse_for_target(compile_for_target(job, big).lines, big)
        assert_readback_matches_plan(strokes, plan, big)

    check()


def _length(points: tuple[tuple[float, float], ...]) -> float:
    return sum(math.dist(a, b) for a, b in itertools.pairwise(points))
