"""The job preview: drawn from the compiled program, and the `preview` command."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from agent.preview import preview_main, render_preview_svg
from agent.profiles import load_profile
from agent.toolpaths import StrokeKind, compile_toolpaths, parse_back
from tests.toolpaths.garments import care_label_paths, job, tshirt_paths

SVG = "{http://www.w3.org/2000/svg}"
KNIFE = load_profile("grbl-knife")


def polylines(root: ET.Element, group: str) -> list[list[tuple[float, float]]]:
    g = root.find(f"{SVG}g[@class='{group}']")
    assert g is not None
    return [
        [tuple(float(v) for v in pair.split(",")) for pair in pl.attrib["points"].split()]  # type: ignore[misc]
        for pl in g.findall(f"{SVG}polyline")
    ]


def test_preview_draws_the_bed_cuts_travels_and_order() -> None:
    tee = job(tshirt_paths())
    root = ET.fromstring(render_preview_svg(tee, KNIFE))
    bed = root.find(f"{SVG}rect[@class='bed']")
    assert bed is not None
    assert (float(bed.attrib["width"]), float(bed.attrib["height"])) == (1600.0, 1000.0)
    strokes = parse_back(compile_toolpaths(tee, KNIFE).lines, KNIFE)
    cuts = [s for s in strokes if s.kind is StrokeKind.CUT]
    travels = [s for s in strokes if s.kind is StrokeKind.TRAVEL]
    assert len(polylines(root, "cuts")) == len(cuts) == 6
    assert len(polylines(root, "travels")) == len(travels)
    order = root.find(f"{SVG}g[@class='order']")
    assert order is not None
    assert [t.text for t in order.findall(f"{SVG}text")] == [str(n) for n in range(1, 7)]


def test_preview_shows_what_the_machine_does_not_what_was_asked() -> None:
    """The first cut is the grain line scored upwards from (260, 130). The drawing shows the
    knife's axis: down 0.25 mm to the right of the start (the blade points along +X before the
    first cut), swivelled round the start to 0.25 mm above it, then up the line."""
    root = ET.fromstring(render_preview_svg(job(tshirt_paths()), KNIFE))
    bed = root.find(f"{SVG}rect[@class='bed']")
    assert bed is not None
    left, top = float(bed.attrib["x"]), float(bed.attrib["y"])
    height = float(bed.attrib["height"])
    first = polylines(root, "cuts")[0]
    machine = [(x - left, top + height - y) for x, y in first]
    assert machine[0] == pytest.approx((260.25, 130.0))
    swivel = machine[: machine.index(min(machine, key=lambda p: math.dist(p, (260.0, 130.25)))) + 1]
    assert len(swivel) >= 3
    for p in swivel:
        assert math.dist(p, (260.0, 130.0)) == pytest.approx(0.25, abs=2e-3)
    assert machine[-1] == pytest.approx((260.0, 430.25))
    # Every cut lies on the bed outline's inside.
    for line in polylines(root, "cuts"):
        for px, py in line:
            assert left <= px <= left + 1600.0
            assert top <= py <= top + height


def test_preview_command_writes_an_svg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job_file = tmp_path / "labels.json"
    labels = job(care_label_paths(), copies=6, spacing_mm=4.0, origin_mm=[5.0, 5.0])
    job_file.write_text(labels.model_dump_json(), encoding="utf-8")
    out = tmp_path / "preview.svg"
    assert preview_main([str(job_file), "--profile", "grbl-laser", "-o", str(out)]) == 0
    root = ET.fromstring(out.read_text(encoding="utf-8"))
    assert len(polylines(root, "cuts")) == 18
    assert "wrote" in capsys.readouterr().out


def test_preview_command_reports_a_job_that_leaves_the_bed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_file = tmp_path / "tee.json"
    job_file.write_text(job(tshirt_paths()).model_dump_json(), encoding="utf-8")
    out = tmp_path / "preview.svg"
    assert preview_main([str(job_file), "--profile", "grbl-laser", "-o", str(out)]) == 1
    assert "error out_of_bounds: job reaches x" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "profile", "code"),
    [
        ("{not json", "grbl-knife", "invalid_job"),
        (
            json.dumps({"job_id": "x", "kind": "toolpaths", "toolpaths": {"paths": []}}),
            "grbl-knife",
            "invalid_job",
        ),
        (None, "no-such-cutter", "unknown_profile"),
        (None, "grbl-1.1", "unsupported_kind"),
    ],
)
def test_preview_command_rejects_bad_input_with_a_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, profile: str, code: str
) -> None:
    job_file = tmp_path / "job.json"
    job_file.write_text(content or job(tshirt_paths()).model_dump_json(), encoding="utf-8")
    status = preview_main([str(job_file), "--profile", profile, "-o", str(tmp_path / "p.svg")])
    assert status in (1, 2)
    assert f"error {code}:" in capsys.readouterr().err


def test_travel_and_cut_lengths_are_in_the_header() -> None:
    tee = job(tshirt_paths())
    svg = render_preview_svg(tee, KNIFE)
    strokes = parse_back(compile_toolpaths(tee, KNIFE).lines, KNIFE)
    cut_m = (
        sum(
            math.dist(a, b)
            for s in strokes
            if s.kind is StrokeKind.CUT
            for a, b in zip(s.points, s.points[1:], strict=False)
        )
        / 1000
    )
    assert f"cut {cut_m:.2f} m" in svg
    assert "6 cuts" in svg
