"""Pattern jobs and checks shared by the pattern tests."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from shapely.geometry import LineString, Point, Polygon

from agent.patterns.sample import tshirt_dxf
from agent.schemas.job import JobRequest

XY = tuple[float, float]


def pattern_payload(job_id: str, data: bytes | None = None, **pattern: Any) -> dict[str, Any]:
    placement = pattern.pop("placement", None)
    body: dict[str, Any] = {"data_b64": base64.b64encode(data or tshirt_dxf()).decode(),
                            "size": "M", **pattern}
    out: dict[str, Any] = {"job_id": job_id, "kind": "pattern", "pattern": body}
    if placement is not None:
        out["placement"] = placement
    return out


def pattern_job(job_id: str = "p-1", data: bytes | None = None, **pattern: Any) -> JobRequest:
    return JobRequest.model_validate_json(json.dumps(pattern_payload(job_id, data, **pattern)))


def cut_traces_outline(strokes: Sequence[Sequence[XY]], outline: Sequence[XY],
                       tolerance: float) -> bool:
    """True when one stroke runs all round ``outline``: every outline vertex lies within
    ``tolerance`` of the stroke and every stroke point within ``tolerance`` of the outline."""
    ring = Polygon(outline).exterior
    for points in strokes:
        if len(points) < 3:
            continue
        line = LineString(points)
        if all(line.distance(Point(p)) <= tolerance for p in outline) and all(
            ring.distance(Point(p)) <= tolerance for p in points
        ):
            return True
    return False
