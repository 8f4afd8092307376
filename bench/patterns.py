"""Pattern jobs: parse + place + compile time and peak RSS for a ~150-block AAMA DXF, and the
T-shirt S-XL marker's utilisation against a bounding-box shelf baseline.

The load: the sample T-shirt (front, back, sleeve x2, neckband) with 34 more numbered pieces,
in four sizes: 152 piece blocks, one size (38 pieces, 47 copies) placed and compiled for the
grbl-knife profile on a 12 m x 1.6 m conveyor table (the profile's own 1.6 x 1 m bed holds a
few pieces only). The measuring runs in a fresh process so its peak RSS is the station's own
(interpreter, ezdxf, shapely and numpy included).

Run: .venv/bin/python bench/patterns.py
Writes bench/results/patterns.json.
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RESULTS = Path(__file__).resolve().parent / "results" / "patterns.json"
TABLE_MM = (12_000.0, 1_600.0)
EXTRA_PIECES = 34


def measure(path: Path) -> dict[str, Any]:
    """In this (fresh) process: parse, place and compile one size of the big pattern."""
    from ezdxf import path as _ezpath  # noqa: F401 - the reader's lazy import, counted up front

    from agent.patterns.compile import plan_pattern
    from agent.patterns.dxf import read_dxf
    from agent.profiles import load_profile
    from agent.schemas.job import JobRequest
    from agent.toolpaths import compile_for_target, target_for
    from agent.toolpaths.bounds import BedLimits

    imports_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data = path.read_bytes()
    target = target_for(load_profile("grbl-knife"))
    target = dataclasses.replace(
        target, limits=BedLimits(TABLE_MM[0], TABLE_MM[1], target.limits.unit_mm))
    payload = json.dumps({"job_id": "bench-150", "kind": "pattern", "pattern": {
        "data_b64": base64.b64encode(data).decode(), "size": "M"}})
    start = time.perf_counter()
    blocks = len(read_dxf(data).pieces)
    parsed = time.perf_counter()
    # The station reads the file once, inside plan_pattern: the timing read above is dropped
    # before it, so the peak below is the station's, not two parsed copies side by side.
    gc.collect()
    # What the station does with the job: validate, read and place (plan), compile.
    job = JobRequest.model_validate_json(payload)
    plan = plan_pattern(job, target)
    planned = time.perf_counter()
    program = compile_for_target(plan.job, target)
    done = time.perf_counter()
    return {
        "blocks": blocks,
        "dxf_bytes": len(data),
        "copies_placed": len(plan.outlines),
        "parse_s": round(parsed - start, 3),
        "validate_parse_place_s": round(planned - parsed, 3),
        "compile_s": round(done - planned, 3),
        "total_s": round(done - parsed, 3),
        "program_lines": len(program.lines),
        "utilisation": plan.detail["utilisation"],
        "rss_after_imports_mib": round(imports_rss, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def marker() -> dict[str, Any]:
    """The T-shirt S-XL (20 copies) on the same table: bottom-left fill vs shelves."""
    from agent.patterns.compile import marker_items
    from agent.patterns.dxf import read_dxf
    from agent.patterns.nest import nest, shelf_utilisation
    from agent.patterns.sample import tshirt_dxf
    from agent.schemas.pattern import Placement

    pattern = read_dxf(tshirt_dxf())
    placement = Placement()
    chosen = [(p, p.quantity or 1) for p in pattern.pieces]
    items, _ = marker_items(chosen, placement)
    start = time.perf_counter()
    result = nest(items, TABLE_MM[0], TABLE_MM[1], spacing=placement.spacing_mm,
                  margin=placement.margin_mm, step=placement.step_mm)
    took = time.perf_counter() - start
    baseline = shelf_utilisation(items, TABLE_MM[0], TABLE_MM[1],
                                 spacing=placement.spacing_mm, margin=placement.margin_mm)
    return {
        "copies": len(items),
        "unplaced": result.unplaced,
        "utilisation": round(result.utilisation, 4),
        "used_length_mm": round(result.used_length_mm, 1),
        "shelf_baseline_utilisation": round(baseline, 4),
        "gain_points": round((result.utilisation - baseline) * 100, 1),
        "place_s": round(took, 3),
    }


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        print(json.dumps(measure(Path(sys.argv[2]))))
        return 0
    from agent.patterns.sample import tshirt_dxf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.dxf"
        path.write_bytes(tshirt_dxf(extra_pieces=EXTRA_PIECES))
        out = subprocess.run([sys.executable, __file__, "--measure", str(path)],
                             capture_output=True, text=True, check=True)
    big = json.loads(out.stdout.strip().splitlines()[-1])
    result = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "table_mm": list(TABLE_MM),
        "big_pattern": big,
        "goals": {"total_s": 2.0, "peak_rss_mib": 80, "gain_points": 10},
        "tshirt_marker": marker(),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
