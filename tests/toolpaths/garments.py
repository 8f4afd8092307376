"""Realistic toolpaths jobs: T-shirt pattern pieces (size M, mm), a care label, a vinyl print."""

from __future__ import annotations

import json
import math
from typing import Any

from agent.schemas.job import JobRequest

XY = tuple[float, float]


def arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int) -> list[XY]:
    """Points on an elliptical arc from a0 to a1 degrees (both ends included)."""
    return [
        (
            round(cx + rx * math.cos(math.radians(a0 + (a1 - a0) * i / n)), 3),
            round(cy + ry * math.sin(math.radians(a0 + (a1 - a0) * i / n)), 3),
        )
        for i in range(n + 1)
    ]


def tshirt_body(neck_depth: float) -> list[XY]:
    """Front or back body outline, 500 x 700 mm, counter-clockwise from the hem's left corner.

    The neckline dips ``neck_depth`` mm below the shoulder points (back: shallow, front: deep).
    """
    pts: list[XY] = [(0.0, 0.0), (500.0, 0.0), (500.0, 450.0)]
    pts += arc(500.0, 640.0, 70.0, 190.0, -90.0, -180.0, 12)[1:]  # right armhole up to shoulder
    pts += [(330.0, 690.0)]  # shoulder seam
    pts += arc(250.0, 690.0, 80.0, neck_depth, 0.0, -180.0, 16)  # neckline, right to left
    pts += [(70.0, 640.0)]
    pts += arc(0.0, 640.0, 70.0, 190.0, 0.0, -90.0, 12)[1:]  # left armhole down
    return pts


def sleeve() -> list[XY]:
    """Short sleeve, 380 mm wide at the cap, 230 mm long."""
    pts: list[XY] = [(40.0, 0.0), (340.0, 0.0), (380.0, 120.0)]
    pts += arc(190.0, 120.0, 190.0, 110.0, 0.0, 180.0, 24)[1:]  # sleeve cap
    return pts


def path(
    points: list[XY], *, closed: bool = True, op: str = "cut", **settings: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {"points": [list(p) for p in points], "closed": closed, "op": op}
    if settings:
        data["settings"] = settings
    return data


def moved(points: list[XY], dx: float, dy: float) -> list[XY]:
    return [(round(x + dx, 3), round(y + dy, 3)) for x, y in points]


def tshirt_paths() -> list[dict[str, Any]]:
    """Front (with a keyhole neck cut-out and a grain-line score), back and two sleeves."""
    front = tshirt_body(neck_depth=90.0)
    keyhole = arc(250.0, 560.0, 18.0, 28.0, 0.0, 360.0, 24)[:-1]  # closed cut-out in the front
    grain = [(250.0, 120.0), (250.0, 420.0)]  # grain line, scored
    back = moved(tshirt_body(neck_depth=25.0), 520.0, 0.0)
    return [
        path(moved(front, 10.0, 10.0)),
        path(moved(keyhole, 10.0, 10.0)),
        path(moved(grain, 10.0, 10.0), closed=False, op="score"),
        path(moved(back, 10.0, 10.0)),
        path(moved(sleeve(), 1060.0, 10.0)),
        path(moved(sleeve(), 1060.0, 300.0)),
    ]


def care_label_paths() -> list[dict[str, Any]]:
    """A 30 x 50 mm care label: engraved outline with rounded corners, cut free, wash symbol."""
    r = 3.0
    outline: list[XY] = []
    for cx, cy, a0 in ((27.0, 3.0, -90.0), (27.0, 47.0, 0.0), (3.0, 47.0, 90.0), (3.0, 3.0, 180.0)):
        outline += arc(cx, cy, r, r, a0, a0 + 90.0, 6)
    engraved = [(x * 0.9 + 1.5, y * 0.9 + 2.5) for x, y in outline]
    tub = [(9.0, 30.0), (11.0, 22.0), (19.0, 22.0), (21.0, 30.0)]  # washing tub symbol
    return [
        path([(round(x, 3), round(y, 3)) for x, y in engraved], op="draw"),
        path(tub, closed=False, op="draw"),
        path(outline, op="cut"),
    ]


def vinyl_logo_paths() -> list[dict[str, Any]]:
    """A heat-transfer "O" (ring with a counter) and a bar, 120 mm wide, for a chest print."""
    outer = arc(40.0, 40.0, 35.0, 35.0, 0.0, 360.0, 48)[:-1]
    counter = arc(40.0, 40.0, 22.0, 22.0, 0.0, 360.0, 36)[:-1]
    bar = [(85.0, 5.0), (120.0, 5.0), (120.0, 75.0), (85.0, 75.0)]
    return [path(outer), path(counter), path(bar)]


def job(paths: list[dict[str, Any]], job_id: str = "tee-m-0001", **extra: Any) -> JobRequest:
    """A toolpaths job as the planner sends it (validated from JSON, like the MQTT path)."""
    data: dict[str, Any] = {
        "job_id": job_id,
        "kind": "toolpaths",
        "toolpaths": {"units": "mm", "paths": paths, "settings": {}},
    }
    data.update(extra)
    return JobRequest.model_validate_json(json.dumps(data))
