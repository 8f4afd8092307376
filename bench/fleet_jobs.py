"""The fleet benchmark's work: care labels for the lasers, pocket flaps for the knives.

Both are device-neutral toolpaths jobs (what a planner sends to a pool, which must not care
which cutter takes it), small enough that a thousand of them run in a few minutes.
"""

from __future__ import annotations

import json
import math
from typing import Any

from agent.garments import care_label

LASER_PROFILE = "grbl-laser"  # 600 x 400 mm bed
KNIFE_PROFILE = "grbl-knife"  # 1600 x 1000 mm bed


def _spot(i: int, cols: int, rows: int, pitch: tuple[float, float]) -> list[float]:
    """Where job ``i`` lands: a few places near the bed's origin, so the travel between one
    job and the next (part of every job's run time) stays short and alike."""
    return [10 + (i % cols) * pitch[0], 10 + (i // cols % rows) * pitch[1]]


def care_label_job(job_id: str, i: int) -> bytes:
    """A care label's washing symbol and text line engraved on a pre-cut 40 x 60 mm blank."""
    paths = [{"points": [list(p) for p in pts], "op": "draw"} for pts in care_label()[1:]]
    job: dict[str, Any] = {
        "job_id": job_id, "kind": "toolpaths",
        "toolpaths": {"paths": paths, "settings": {"speed_mm_s": 100.0}},
        "origin_mm": _spot(i, 4, 2, (45.0, 65.0)),
        "meta": {"order": "SO-2207", "garment": "care label", "size": "M"},
    }
    return json.dumps(job).encode()


def _pocket_flap(width: float = 60.0, height: float = 30.0,
                 r: float = 8.0) -> list[list[float]]:
    """A pocket flap: square top, rounded bottom corners (origin at the bottom-left)."""
    pts: list[list[float]] = [[0.0, height], [0.0, r]]
    for cx, cy, a0 in ((r, r, 180.0), (width - r, r, 270.0)):
        pts += [[cx + r * math.cos(math.radians(a0 + 90.0 * k / 8)),
                 cy + r * math.sin(math.radians(a0 + 90.0 * k / 8))] for k in range(9)]
    pts.append([width, height])
    return pts


def flap_job(job_id: str, i: int) -> bytes:
    """A shirt's pocket flap cut from woven cotton with a drag knife."""
    job: dict[str, Any] = {
        "job_id": job_id, "kind": "toolpaths",
        "toolpaths": {"paths": [{"points": _pocket_flap(), "closed": True, "op": "cut"}],
                      "settings": {"speed_mm_s": 130.0}},
        "origin_mm": _spot(i, 3, 3, (70.0, 40.0)),
        "meta": {"order": "SO-2207", "garment": "shirt, pocket flap", "size": "M"},
    }
    return json.dumps(job).encode()
