"""SVG jobs: shapes, paths and transforms flattened within the tolerance, colours and group ids
mapped to operations, broken documents refused with bad_pattern."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from agent.errors import ProgramError
from agent.jobs.prepare import prepare_program
from agent.patterns.svg import svg_toolpaths
from agent.profiles import load_profile
from agent.schemas.job import JobRequest
from agent.toolpaths import StrokeKind, parse_back

DRAWING = """<svg xmlns="http://www.w3.org/2000/svg" width="200mm" height="100mm"
  viewBox="0 0 200 100">
  <g id="outline">
    <rect x="10" y="10" width="50" height="30" stroke="#000000" fill="none"/>
    <circle cx="100" cy="50" r="20" stroke="#ff0000" transform="translate(30, 0)"/>
  </g>
  <path d="M 20 80 C 40 60, 60 100, 80 80" stroke="#0000ff" fill="none"/>
  <g transform="scale(2)"><line x1="5" y1="5" x2="15" y2="5" stroke="#00ff00"/></g>
</svg>"""


def svg_job(data: str = DRAWING, **svg: Any) -> JobRequest:
    return JobRequest.model_validate_json(json.dumps(
        {"job_id": "svg-1", "kind": "svg", "svg": {"data": data, **svg}}))


def test_shapes_become_paths_in_mm_with_y_up_and_ops_by_group_or_colour() -> None:
    job = svg_job(layers={"outline": "cut", "#0000ff": "draw", "#00ff00": "skip"})
    internal, detail = svg_toolpaths(job)
    assert internal.toolpaths is not None
    paths = internal.toolpaths.paths
    assert detail["paths"] == {"cut": 2, "draw": 1}
    assert detail["skipped"] == {"count": 1, "layers": {"#00ff00": 1}, "why": "mapped to 'skip'"}
    rect, circle, curve = paths
    assert rect.closed and rect.op.value == "cut"
    # y flipped about the 100 mm height: the rect spans y 60..90
    assert sorted(set(rect.points)) == [(10.0, 60.0), (10.0, 90.0), (60.0, 60.0), (60.0, 90.0)]
    # the circle, moved 30 mm right, within 0.05 mm of its true radius at every point
    assert circle.closed
    for x, y in circle.points:
        assert abs(math.hypot(x - 130.0, y - 50.0) - 20.0) <= 0.05 + 1e-6
    assert len(circle.points) >= 40
    assert curve.op.value == "draw" and not curve.closed
    assert curve.points[0] == (20.0, 20.0) and curve.points[-1] == (80.0, 20.0)


def test_scale_and_tolerance() -> None:
    internal, _ = svg_toolpaths(svg_job(scale=2.0, tolerance_mm=0.5))
    assert internal.toolpaths is not None
    rect, circle = internal.toolpaths.paths[:2]
    assert any(math.dist(p, (20.0, 120.0)) < 1e-3 for p in rect.points)
    coarse = len(circle.points)
    fine, _ = svg_toolpaths(svg_job(scale=2.0, tolerance_mm=0.01))
    assert fine.toolpaths is not None
    assert len(fine.toolpaths.paths[1].points) > coarse


@pytest.mark.parametrize(("data", "phrase"), [
    ('<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa">]><svg>&a;</svg>', "DTD"),
    ("<svg><g><rect x='1' y='1' width='5' height='5'></g></svg>", "not well-formed"),
    ("<svg>" + "<g>" * 40 + "</g>" * 40 + "</svg>", "nested deeper"),
    ('<svg xmlns="http://www.w3.org/2000/svg"><text x="1" y="1">hi</text></svg>',
     "nothing to cut"),
])
def test_broken_documents_are_bad_pattern(data: str, phrase: str) -> None:
    with pytest.raises(ProgramError) as err:
        svg_toolpaths(svg_job(data))
    assert err.value.code == "bad_pattern"
    assert phrase in err.value.message


def test_svg_job_plots_on_the_hpgl_plotter_as_drawn() -> None:
    profile = load_profile("hpgl-7475a")
    program = prepare_program(svg_job(layers={"#00ff00": "skip"}), profile)
    assert program.detail is not None and program.detail["svg"]["paths"] == {"cut": 3}
    strokes = [s for s in parse_back(program.lines, profile) if s.kind is StrokeKind.CUT]
    corners = {(10.0, 60.0), (10.0, 90.0), (60.0, 60.0), (60.0, 90.0)}
    assert any(corners <= {(round(x, 3), round(y, 3)) for x, y in s.points} for s in strokes)
