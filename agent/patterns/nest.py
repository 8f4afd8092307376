"""Bottom-left fill of pattern pieces over their real outlines (shapely), not their boxes.

Pieces go largest first. For each allowed turn, candidate positions are tried column by column
(left to right, and bottom to top within a column) on a ``step_mm`` grid, all of a column's
candidates tested at once against the placed pieces grown by the spacing; the first that fits
is then slid down and left in fine steps. The turn that lands furthest left (then lowest) wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Polygon

XY = tuple[float, float]


@dataclass(frozen=True)
class NestItem:
    key: str  # names the piece and copy in errors
    ring: list[XY]  # outline, mm, any position
    turns: tuple[int, ...]  # allowed rotations in degrees (counter-clockwise)


@dataclass(frozen=True)
class Placed:
    key: str
    turn: int
    dx: float  # after turning about (0, 0), move by (dx, dy)
    dy: float


@dataclass(frozen=True)
class NestResult:
    placed: list[Placed]
    unplaced: list[str]
    used_length_mm: float  # along X
    utilisation: float  # piece area / (used length x usable height)


def turn_points(points: list[XY], turn: int) -> list[XY]:
    a = math.radians(turn)
    c, s = round(math.cos(a), 12), round(math.sin(a), 12)
    return [(x * c - y * s, x * s + y * c) for x, y in points]


def nest(items: list[NestItem], width: float, height: float, *, spacing: float,
         margin: float, step: float) -> NestResult:
    order = sorted(range(len(items)), key=lambda i: -abs(Polygon(items[i].ring).area))
    obstacles: list[Polygon] = []
    grown = shapely.Polygon()
    placed: list[Placed] = []
    unplaced: list[str] = []
    x_min, y_min = margin, margin
    x_max, y_max = width - margin, height - margin
    total_area = 0.0
    used = 0.0
    for i in order:
        item = items[i]
        best: tuple[float, float, int, float, float] | None = None
        for turn in item.turns:
            pts = np.asarray(turn_points(item.ring, turn))
            lo = pts.min(axis=0)
            pts = pts - lo
            w, h = pts.max(axis=0)
            if w > x_max - x_min + 1e-9 or h > y_max - y_min + 1e-9:
                continue
            spot = _first_fit(pts, grown, x_min, y_min, x_max - w, y_max - h, step)
            if spot is None:
                continue
            x, y = spot
            if best is None or (x, y) < (best[0], best[1]):
                best = (x, y, turn, x - lo[0], y - lo[1])
        if best is None:
            unplaced.append(item.key)
            continue
        x, y, turn, dx, dy = best
        poly = Polygon([(px + dx, py + dy) for px, py in turn_points(item.ring, turn)])
        obstacles.append(poly)
        total_area += poly.area
        used = max(used, poly.bounds[2])
        grown = shapely.union(grown, poly.buffer(spacing, quad_segs=4)) if spacing > 0 else (
            shapely.union(grown, poly))
        shapely.prepare(grown)
        placed.append(Placed(item.key, turn, float(dx), float(dy)))
    usable_h = max(y_max - y_min, 1e-9)
    length = max(used - x_min, 1e-9)
    return NestResult(placed, unplaced, used, total_area / (length * usable_h) if placed else 0.0)


def _fits(pts: np.ndarray, offsets: np.ndarray, grown: shapely.Geometry) -> np.ndarray:
    if grown.is_empty:
        return np.ones(len(offsets), dtype=bool)
    shells = pts[None, :, :] + offsets[:, None, :]
    polys = shapely.polygons(shells)
    hits: np.ndarray = shapely.intersects(grown, polys)
    return ~hits


def _first_fit(pts: np.ndarray, grown: shapely.Geometry, x0: float, y0: float, x1: float,
               y1: float, step: float) -> tuple[float, float] | None:
    if x1 < x0 - 1e-9 or y1 < y0 - 1e-9:
        return None
    xs = np.append(np.arange(x0, x1, step), x1)
    ys = np.append(np.arange(y0, y1, step), y1)
    for x in xs:
        offsets = np.column_stack([np.full(len(ys), x), ys])
        ok = _fits(pts, offsets, grown)
        if ok.any():
            y = float(ys[int(np.argmax(ok))])
            return _slide(pts, grown, float(x), y, x0, y0, step)
    return None


def _slide(pts: np.ndarray, grown: shapely.Geometry, x: float, y: float, x0: float, y0: float,
           step: float) -> tuple[float, float]:
    """Move down, then left, in steps of a tenth of the grid while it still fits."""
    fine = step / 10.0
    for axis in (1, 0):
        lo = y0 if axis == 1 else x0
        here = y if axis == 1 else x
        tries = np.arange(here - fine, max(lo, here - step) - 1e-9, -fine)
        if len(tries) == 0:
            continue
        offsets = (np.column_stack([np.full(len(tries), x), tries]) if axis == 1
                   else np.column_stack([tries, np.full(len(tries), y)]))
        ok = _fits(pts, offsets, grown)
        # the last fitting try before the first that does not
        bad = np.flatnonzero(~ok)
        last = (bad[0] - 1) if len(bad) else len(tries) - 1
        if last >= 0:
            if axis == 1:
                y = float(tries[last])
            else:
                x = float(tries[last])
    return x, y


def shelf_utilisation(items: list[NestItem], width: float, height: float, *, spacing: float,
                      margin: float) -> float:
    """The baseline: bounding boxes on shelves (columns along X), unturned."""
    boxes = []
    area = 0.0
    for item in items:
        poly = Polygon(item.ring)
        area += poly.area
        x0, y0, x1, y1 = poly.bounds
        boxes.append((x1 - x0, y1 - y0))
    boxes.sort(key=lambda b: -b[1])
    x = col_w = margin
    y = margin
    col_w = 0.0
    used = margin
    for w, h in sorted(boxes, key=lambda b: -b[0]):
        if y + h > height - margin:
            x += col_w + spacing
            y = margin
            col_w = 0.0
        col_w = max(col_w, w)
        y += h + spacing
        used = max(used, x + w)
    return area / ((used - margin) * (height - 2 * margin))
