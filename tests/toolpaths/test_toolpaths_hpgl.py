"""HP-GL output for the HP 7475A and the Roland CAMM-GL III, checked by hp2xx (an independent
HP-GL reader) and by the HP-GL dialect's own validator."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import pytest

from agent.dialects.hpgl import prepare_hpgl_program
from agent.profiles import load_profile
from agent.profiles.hpgl import HpglProfile
from agent.schemas.job import JobRequest
from agent.toolpaths import (
    StrokeKind,
    compile_for_target,
    compile_toolpaths,
    parse_back,
    plan_for_target,
    target_for,
)
from tests.toolpaths.garments import job, path, sleeve, vinyl_logo_paths

HP2XX = "/usr/bin/hp2xx"
PLOTTER = load_profile("hpgl-7475a")
VINYL = load_profile("roland-camm-gl3")
INSTRUCTION = re.compile(r"^[A-Z]{2}(?:\d+(?:\.\d+)?(?:,\d+(?:\.\d+)?)*)?;$")


def sleeve_plot() -> JobRequest:
    """A sleeve at 1:1 with its grain line and a logo placement mark, on A3."""
    grain = [(190.0, 30.0), (190.0, 190.0)]
    mark = [(170.0, 60.0), (210.0, 60.0), (210.0, 100.0), (170.0, 100.0)]
    return job(
        [path(sleeve()), path(grain, closed=False, op="score"), path(mark, op="draw")],
        origin_mm=[10.0, 20.0],
    )


def vinyl_job() -> JobRequest:
    return job(vinyl_logo_paths(), copies=3, spacing_mm=8.0, origin_mm=[5.0, 5.0])


def run_hp2xx(lines: tuple[str, ...], tmp_path: Path) -> str:
    source = tmp_path / "job.hpgl"
    source.write_text("\n".join(lines) + "\n", encoding="ascii")
    done = subprocess.run(
        [HP2XX, "-m", "png", "-f", str(tmp_path / "job.png"), str(source)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def coordinates(lines: tuple[str, ...]) -> list[tuple[int, int]]:
    out = []
    for line in lines:
        if line[:2] in ("PU", "PD") and len(line) > 3:
            x, y = line[2:-1].split(",")
            out.append((int(x), int(y)))
    return out


def test_plotter_lines_are_one_instruction_each_with_non_negative_integer_coordinates() -> None:
    for profile, tee in ((PLOTTER, sleeve_plot()), (VINYL, vinyl_job())):
        lines = compile_toolpaths(tee, profile).lines
        assert lines[:3] == ("IN;", "PA;", "SP1;")
        assert lines[-2:] == ("PU;", "SP0;")
        for line in lines:
            assert INSTRUCTION.match(line), line
        points = coordinates(lines)
        assert points
        assert all(0 <= x <= 32767 and 0 <= y <= 32767 for x, y in points)


def test_hp2xx_reads_the_7475a_program_with_nothing_ignored(tmp_path: Path) -> None:
    lines = compile_toolpaths(sleeve_plot(), PLOTTER).lines
    report = run_hp2xx(lines, tmp_path)
    assert "HPGL command(s) ignored: 0" in report
    assert (tmp_path / "job.png").stat().st_size > 0
    # hp2xx's coordinate range is exactly the extent of what we sent.
    points = coordinates(lines)
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    want = f"Coordinate range: ({min(xs)}, {min(ys)}) ... ({max(xs)}, {max(ys)})"
    assert want in report


def test_hp2xx_ignores_only_force_select_in_the_camm_program(tmp_path: Path) -> None:
    """FS is a cutter instruction hp2xx (a plotter emulator) does not implement."""
    lines = compile_toolpaths(vinyl_job(), VINYL).lines
    report = run_hp2xx(lines, tmp_path)
    fs_count = sum(1 for line in lines if line.startswith("FS"))
    assert fs_count >= 1
    assert f"HPGL command(s) ignored: {fs_count}" in report
    assert set(re.findall(r"([A-Z]{2}): ignored", report)) == {"FS"}
    assert "Coordinate range:" in report


def test_the_hpgl_dialect_validator_takes_the_program_unchanged() -> None:
    for profile, tee in ((PLOTTER, sleeve_plot()), (VINYL, vinyl_job())):
        assert isinstance(profile, HpglProfile)
        lines = compile_toolpaths(tee, profile).lines
        again = prepare_hpgl_program("\n".join(lines), profile)
        # It only puts PA; in front, in case a previous job left the plotter relative.
        assert again.lines == ("PA;", *lines)


def test_speed_and_force_become_vs_and_fs() -> None:
    lines = compile_toolpaths(vinyl_job(), VINYL).lines
    assert "VS20;" in lines  # 200 mm/s
    assert "FS90;" in lines  # the cut's 90 gf
    plotter_lines = compile_toolpaths(sleeve_plot(), PLOTTER).lines
    assert "VS15;" in plotter_lines  # 150 mm/s
    assert not any(line.startswith("FS") for line in plotter_lines)


def test_vs_is_clamped_to_the_device_range() -> None:
    slow = job([path(sleeve(), speed_mm_s=1.0)], origin_mm=[10.0, 10.0])
    assert "VS0.38;" in compile_toolpaths(slow, PLOTTER).lines
    fast = job([path(sleeve(), speed_mm_s=381.0)], origin_mm=[10.0, 10.0])
    assert "VS38.1;" in compile_toolpaths(fast, PLOTTER).lines


def test_the_vinyl_counter_is_cut_before_its_letter() -> None:
    plan = plan_for_target(vinyl_job(), target_for(VINYL))
    for copy in range(3):
        order = [p.source for p in plan if p.copy == copy]
        assert order.index(1) < order.index(0)  # counter (hole) before the outer ring


def test_parse_back_reads_plotter_units_as_mm() -> None:
    strokes = parse_back(compile_toolpaths(sleeve_plot(), PLOTTER).lines, PLOTTER)
    cuts = [s for s in strokes if s.kind is StrokeKind.CUT]
    assert len(cuts) == 3
    xs = [x for s in cuts for x, _ in s.points]
    assert min(xs) == pytest.approx(10.0)
    assert max(xs) == pytest.approx(390.0)
    assert all(s.speed_mm_s == 150.0 for s in cuts)


def test_tools_map_to_pens() -> None:
    settings = PLOTTER.toolpath
    assert settings is not None
    target = dataclasses.replace(
        target_for(PLOTTER), settings=settings.model_copy(update={"tools": {"marker-red": 2}})
    )
    paths = [path(sleeve()), path([(50.0, 50.0), (90.0, 50.0)], closed=False, op="draw")]
    paths[1]["tool"] = "marker-red"
    lines = compile_for_target(job(paths, origin_mm=[10.0, 10.0]), target).lines
    # The marker line lies inside the sleeve, so it is drawn first, with pen 2.
    pen2, pen1 = lines.index("SP2;"), lines.index("SP1;")
    assert pen2 < pen1
    assert lines[pen2:pen1] == ("SP2;", "VS15;", "PU2400,2400;", "PD4000,2400;", "PU;")
