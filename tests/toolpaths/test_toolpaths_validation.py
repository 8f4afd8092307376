"""Bad toolpaths jobs are rejected with a code, before anything is sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from agent.errors import ProgramError
from agent.profiles import load_profile
from agent.schemas.job import JobKind, JobRequest
from agent.schemas.toolpaths import Path, Toolpaths, ToolSettings
from agent.toolpaths import ToolpathBoundsError, compile_toolpaths, plan_for_target, target_for
from tests.toolpaths.garments import care_label_paths, job, path, sleeve, tshirt_paths

KNIFE = load_profile("grbl-knife")
LASER = load_profile("grbl-laser")


def raw_job(paths: Any, **extra: Any) -> str:
    data = {"job_id": "tee-bad", "kind": "toolpaths", "toolpaths": {"paths": paths}}
    data.update(extra)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("paths", "extra"),
    [
        ([], {}),  # no paths
        ([{"points": [[10, 10]]}], {}),  # one point
        ([{"points": [[10, 10], [10, 10], [10, 10]]}], {}),  # no extent
        ([{"points": [[10, 10], [50, 10], [10, 10]], "closed": True}], {}),  # a closed sliver
        ([{"points": [[10, 10], [1e6, 10]]}], {}),  # absurd size
        ([{"points": [[10, 10], [50, 10]], "op": "engrave"}], {}),
        ([{"points": [[10, 10], [50, 10]], "settings": {"speed_mm_s": -3}}], {}),
        ([{"points": [[10, 10], [50, 10]], "settings": {"passes": 500}}], {}),
        ([{"points": [[10, 10], [50, 10]], "colour": "red"}], {}),  # unknown key
        ([{"points": [[10, 10], [50, 10]]}], {"copies": 0}),
        ([{"points": [[10, 10], [50, 10]]}], {"rotation_deg": 1000}),
        ([{"points": [[10, 10], [50, 10]]}], {"origin_mm": [10]}),
    ],
)
def test_malformed_jobs_fail_validation(paths: Any, extra: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        JobRequest.model_validate_json(raw_job(paths, **extra))


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_fail_validation(bad: str) -> None:
    text = raw_job([{"points": [[10, 10], [50, 10]]}]).replace("50", bad)
    assert bad in text
    with pytest.raises(ValidationError):
        JobRequest.model_validate_json(text)
    with pytest.raises(ValidationError):
        JobRequest.model_validate_json(
            raw_job([{"points": [[10, 10], [50, 10]]}], origin_mm=[0, 0]).replace(
                "[0, 0]", f"[{bad}, 0]"
            )
        )


def test_too_many_points_in_one_job_fail_validation() -> None:
    many = [[float(i % 500), float(i // 500)] for i in range(700_001)]
    with pytest.raises(ValidationError) as caught:
        Toolpaths.model_validate({"paths": [{"points": many}] * 3}, strict=False)
    assert "2100003 points in one job; at most 2000000" in str(caught.value)


def unchecked_job(points: list[tuple[float, float]], closed: bool = False) -> JobRequest:
    """A job built in code, skipping the wire validation: the compiler must still check it."""
    bad_path = Path.model_construct(points=points, closed=closed)
    toolpaths = Toolpaths.model_construct(paths=[bad_path], units="mm", settings=ToolSettings())
    return JobRequest.model_construct(
        job_id="tee-unchecked",
        kind=JobKind.TOOLPATHS,
        toolpaths=toolpaths,
        copies=1,
        spacing_mm=10.0,
        origin_mm=(0.0, 0.0),
        rotation_deg=0.0,
    )


@pytest.mark.parametrize(
    ("points", "closed"),
    [
        ([(10.0, 10.0), (float("nan"), 20.0)], False),
        ([(10.0, 10.0), (float("inf"), 20.0)], False),
        ([(10.0, 10.0), (10.0, 10.0)], False),
        ([(10.0, 10.0), (30.0, 10.0), (10.0, 10.0)], True),
    ],
)
def test_the_compiler_checks_jobs_built_without_validation(
    points: list[tuple[float, float]], closed: bool
) -> None:
    with pytest.raises(ProgramError) as caught:
        compile_toolpaths(unchecked_job(points, closed), KNIFE)
    assert caught.value.code == "invalid_toolpaths"


def test_an_operation_the_machine_does_not_do_is_rejected() -> None:
    tee = job([path(sleeve(), op="draw")])
    with pytest.raises(ProgramError) as caught:
        compile_toolpaths(tee, KNIFE)
    assert caught.value.code == "invalid_toolpaths"
    assert "does not draw" in caught.value.message


def test_a_speed_above_the_machine_maximum_is_rejected() -> None:
    tee = job([path(sleeve(), speed_mm_s=400.0)])
    with pytest.raises(ProgramError) as caught:
        compile_toolpaths(tee, KNIFE)
    assert caught.value.code == "invalid_toolpaths"
    assert "400 mm/s" in caught.value.message


def test_too_many_points_after_copies_and_passes_are_rejected() -> None:
    outline = [(float(i % 100), float(i // 100) * 0.01) for i in range(6000)]
    tee = job([path(outline, closed=False)], copies=1000, spacing_mm=0.0)
    with pytest.raises(ProgramError) as caught:
        compile_toolpaths(tee, LASER)
    assert caught.value.code == "invalid_toolpaths"
    assert "6000000 points" in caught.value.message


def test_a_tshirt_is_too_big_for_the_laser_bed() -> None:
    with pytest.raises(ToolpathBoundsError) as caught:
        compile_toolpaths(job(tshirt_paths()), LASER)
    err = caught.value
    assert err.code == "out_of_bounds"
    _min_x, _min_y, max_x, max_y = err.extent_mm
    assert max_x > 600.0
    assert max_y > 400.0
    assert f"{max_x:.3f}" in err.message
    assert err.bed_mm == (600.0, 400.0)


def test_copies_that_overflow_the_bed_are_rejected() -> None:
    # Two T-shirt sets fit across a 1600 mm bed only once; the second row leaves it.
    with pytest.raises(ToolpathBoundsError) as caught:
        compile_toolpaths(job(tshirt_paths(), copies=2), KNIFE)
    assert caught.value.extent_mm[3] > 1000.0


def test_blade_offset_on_the_bed_edge_is_out_of_bounds() -> None:
    # The cut runs into x = 0 (nearest end first: from x = 50); the knife's axis, 0.25 mm
    # ahead of the tip, would leave the bed.
    edge = [(50.0, 10.0), (0.0, 10.0), (0.0, 100.0)]
    tee = job([path(edge, closed=False)])
    with pytest.raises(ToolpathBoundsError) as caught:
        compile_toolpaths(tee, KNIFE)
    assert caught.value.extent_mm[0] == pytest.approx(-0.25)
    # The laser has no blade: the same path fits.
    assert compile_toolpaths(tee, LASER).lines


def test_labels_wrap_into_rows_and_fit_the_laser_bed() -> None:
    labels = job(care_label_paths(), copies=40, spacing_mm=4.0, origin_mm=[5.0, 5.0])
    plan = plan_for_target(labels, target_for(LASER))
    boxes: dict[int, tuple[float, float, float, float]] = {}
    for p in plan:
        xs = [x for x, _ in p.tip]
        ys = [y for _, y in p.tip]
        old = boxes.get(p.copy, (1e9, 1e9, -1e9, -1e9))
        boxes[p.copy] = (min(old[0], *xs), min(old[1], *ys), max(old[2], *xs), max(old[3], *ys))
    assert len(boxes) == 40
    rows = {round(b[1], 3) for b in boxes.values()}
    assert len(rows) == 3  # 17 labels of 30 mm + 4 mm gaps to a 600 mm row
    for a in range(40):
        for b in range(a + 1, 40):
            ba, bb = boxes[a], boxes[b]
            apart = ba[2] + 4.0 <= bb[0] + 1e-6 or bb[2] + 4.0 <= ba[0] + 1e-6
            apart = apart or ba[3] + 4.0 <= bb[1] + 1e-6 or bb[3] + 4.0 <= ba[1] + 1e-6
            assert apart, f"copies {a} and {b} are closer than the spacing"
