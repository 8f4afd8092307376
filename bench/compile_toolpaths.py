"""Compile time and peak memory for a 100,000-point toolpaths job, per machine profile.

The job is a cutting marker of 100 welt pockets (10 x 10 on the bed), each a finely sampled
900-point outline around a 100-point buttonhole: 100,000 points, 200 paths, every hole inside
its pocket (inside-out order), sized to fill each profile's bed.

Run: .venv/bin/python bench/compile_toolpaths.py
Writes bench/results/compile_toolpaths.json.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.preview import render_preview_svg
from agent.profiles import Profile, load_profile
from agent.schemas.job import JobRequest
from agent.toolpaths import compile_toolpaths, parse_back

PROFILES = ["grbl-knife", "grbl-laser", "marlin-2", "hpgl-7475a", "roland-camm-gl3"]
OUTLINE_POINTS = 900
HOLE_POINTS = 100
GRID = 10
RUNS = 3
RESULTS = Path(__file__).resolve().parent / "results" / "compile_toolpaths.json"


def pocket(cx: float, cy: float, w: float, h: float) -> list[list[float]]:
    """A rounded pocket outline (superellipse), counter-clockwise."""
    pts = []
    for i in range(OUTLINE_POINTS):
        a = 2 * math.pi * i / OUTLINE_POINTS
        c, s = math.cos(a), math.sin(a)
        x = cx + w / 2 * math.copysign(abs(c) ** 0.4, c)
        y = cy + h / 2 * math.copysign(abs(s) ** 0.4, s)
        pts.append([round(x, 3), round(y, 3)])
    return pts


def buttonhole(cx: float, cy: float, length: float) -> list[list[float]]:
    pts = []
    for i in range(HOLE_POINTS):
        a = 2 * math.pi * i / HOLE_POINTS
        x = cx + length / 2 * math.cos(a)
        y = cy + length / 12 * math.sin(a)
        pts.append([round(x, 3), round(y, 3)])
    return pts


def marker_job(profile: Profile) -> str:
    """The job as JSON, pockets sized so the grid fills 90 % of the bed."""
    cell_w = profile.bed.width_mm * 0.9 / GRID
    cell_h = profile.bed.height_mm * 0.9 / GRID
    paths: list[dict[str, Any]] = []
    for i in range(GRID):
        for j in range(GRID):
            cx = profile.bed.width_mm * 0.05 + cell_w * (i + 0.5)
            cy = profile.bed.height_mm * 0.05 + cell_h * (j + 0.5)
            paths.append({"points": pocket(cx, cy, cell_w * 0.85, cell_h * 0.85), "closed": True})
            hole = buttonhole(cx, cy + cell_h * 0.2, cell_w * 0.4)
            paths.append({"points": hole, "closed": True})
    return json.dumps(
        {"job_id": "marker-pockets-100", "kind": "toolpaths", "toolpaths": {"paths": paths}}
    )


def timed(fn: Any, runs: int = RUNS) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def peak_mib(fn: Any) -> float:
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / (1024 * 1024)


def bench_profile(name: str) -> dict[str, object]:
    profile = load_profile(name)
    text = marker_job(profile)
    validate_s, job = timed(lambda: JobRequest.model_validate_json(text))
    assert isinstance(job, JobRequest)
    assert job.toolpaths is not None
    points = job.toolpaths.point_count()
    compile_s, program = timed(lambda: compile_toolpaths(job, profile))
    parse_s, strokes = timed(lambda: parse_back(program.lines, profile))
    preview_s, svg = timed(lambda: render_preview_svg(job, profile), runs=1)
    peak = peak_mib(lambda: compile_toolpaths(job, profile))
    return {
        "profile": name,
        "points": points,
        "paths": len(job.toolpaths.paths),
        "program_lines": len(program.lines),
        "program_bytes": sum(len(line) + 1 for line in program.lines),
        "validate_s": round(validate_s, 4),
        "compile_s": round(compile_s, 4),
        "compile_points_per_s": round(points / compile_s),
        "compile_peak_mib": round(peak, 1),
        "parse_back_s": round(parse_s, 4),
        "preview_s": round(preview_s, 4),
        "preview_bytes": len(svg),
        "strokes": len(strokes),
    }


def run_benchmark() -> dict[str, object]:
    results = [bench_profile(name) for name in PROFILES]
    report: dict[str, object] = {
        "benchmark": "compile_toolpaths",
        "job": f"{GRID * GRID} pockets x ({OUTLINE_POINTS} + {HOLE_POINTS}) points",
        "runs": RUNS,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def main() -> None:
    report = run_benchmark()
    print(f"job: {report['job']}  (median of {RUNS} runs; peak memory by tracemalloc)")
    header = f"{'profile':<17}{'points':>8}{'lines':>9}{'compile s':>11}{'peak MiB':>10}"
    header += f"{'parse s':>9}{'preview s':>11}{'validate s':>12}"
    print(header)
    results = report["results"]
    assert isinstance(results, list)
    for r in results:
        print(
            f"{r['profile']:<17}{r['points']:>8}{r['program_lines']:>9}{r['compile_s']:>11.3f}"
            f"{r['compile_peak_mib']:>10.1f}{r['parse_back_s']:>9.3f}{r['preview_s']:>11.3f}"
            f"{r['validate_s']:>12.3f}"
        )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
