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


_HALF_DIAGONAL = 0.70711  # a grid cell's centre to its corner, in cells


class _Occupancy:
    """Grid cells (``step`` mm) that lie wholly inside a placed piece grown by the spacing.

    Only a filter: a candidate whose wholly-inside cells meet occupied cells certainly
    collides and is dropped before shapely's exact test; every survivor is tested exactly.
    """

    def __init__(self, x0: float, y0: float, x1: float, y1: float, step: float) -> None:
        self.x0, self.y0, self.step = x0, y0, step
        self.nc = max(1, math.ceil((x1 - x0) / step))
        self.nr = max(1, math.ceil((y1 - y0) / step))
        self.cells = np.zeros((self.nc, self.nr), dtype=np.uint8)
        wide = np.int32 if self.nr > 30_000 else np.int16
        self.prefix = np.zeros((self.nc, self.nr + 1), dtype=wide)
        self.free_run = np.full(self.nc, self.nr, dtype=np.int32)

    def add(self, grown: shapely.Geometry) -> None:
        core = grown.buffer(-_HALF_DIAGONAL * self.step, quad_segs=2)
        if core.is_empty:
            return
        bx0, by0, bx1, by1 = core.bounds
        c0 = max(0, int((bx0 - self.x0) // self.step))
        c1 = min(self.nc, int((bx1 - self.x0) // self.step) + 1)
        r0 = max(0, int((by0 - self.y0) // self.step))
        r1 = min(self.nr, int((by1 - self.y0) // self.step) + 1)
        if c0 >= c1 or r0 >= r1:
            return
        cx = self.x0 + (np.arange(c0, c1) + 0.5) * self.step
        cy = self.y0 + (np.arange(r0, r1) + 0.5) * self.step
        gx, gy = np.meshgrid(cx, cy, indexing="ij")
        inside = shapely.contains_xy(core, gx, gy)
        self.cells[c0:c1, r0:r1] |= inside
        block = self.cells[c0:c1]
        self.prefix[c0:c1, 1:] = np.cumsum(block, axis=1, dtype=self.prefix.dtype)
        for c in range(c0, c1):
            self.free_run[c] = _longest_zero_run(self.cells[c])


def _longest_zero_run(column: np.ndarray) -> int:
    padded = np.concatenate(([1], column, [1]))
    ones = np.flatnonzero(padded)
    return int((np.diff(ones) - 1).max())


def _piece_spans(pts: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each grid column of the piece (at its box's corner), the longest run of cells
    wholly inside it: columns k, first cells a, last cells b."""
    poly = shapely.Polygon(pts).buffer(-_HALF_DIAGONAL * step, quad_segs=2)
    w, h = pts.max(axis=0)
    nk, nl = max(1, int(w // step)), max(1, int(h // step))
    if poly.is_empty:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    gx, gy = np.meshgrid((np.arange(nk) + 0.5) * step, (np.arange(nl) + 0.5) * step,
                         indexing="ij")
    inside = shapely.contains_xy(poly, gx, gy)
    ks, a_s, b_s = [], [], []
    for k in range(nk):
        col = inside[k]
        if not col.any():
            continue
        padded = np.concatenate(([False], col, [False])).astype(np.int8)
        edges = np.flatnonzero(np.diff(padded))
        starts, stops = edges[::2], edges[1::2]
        longest = int(np.argmax(stops - starts))
        ks.append(k)
        a_s.append(int(starts[longest]))
        b_s.append(int(stops[longest]) - 1)
    as_array = np.array
    return (as_array(ks, dtype=np.int64), as_array(a_s, dtype=np.int64),
            as_array(b_s, dtype=np.int64))


def nest(items: list[NestItem], width: float, height: float, *, spacing: float,
         margin: float, step: float) -> NestResult:
    order = sorted(range(len(items)), key=lambda i: -abs(Polygon(items[i].ring).area))
    grown = shapely.Polygon()
    placed: list[Placed] = []
    unplaced: list[str] = []
    x_min, y_min = margin, margin
    x_max, y_max = width - margin, height - margin
    occupancy = _Occupancy(x_min, y_min, x_max, y_max, step)
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
            spot = _first_fit(pts, grown, occupancy, x_max - w, y_max - h, step)
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
        total_area += poly.area
        used = max(used, poly.bounds[2])
        halo = poly.buffer(spacing, quad_segs=4) if spacing > 0 else poly
        grown = shapely.union(grown, halo)
        shapely.prepare(grown)
        occupancy.add(halo)
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


def _first_fit(pts: np.ndarray, grown: shapely.Geometry, occ: _Occupancy, x1: float,
               y1: float, step: float) -> tuple[float, float] | None:
    """The first grid position, column by column from the left and bottom up, where the
    piece fits; then slid down and left."""
    x0, y0 = occ.x0, occ.y0
    if x1 < x0 - 1e-9 or y1 < y0 - 1e-9:
        return None
    n_i = int((x1 - x0) // step + 1e-9) + 1
    n_j = int((y1 - y0) // step + 1e-9) + 1
    ks, a_s, b_s = _piece_spans(pts, step)
    js = np.arange(n_j)
    columns = np.arange(n_i)
    if len(ks):
        # A column is hopeless when one of the piece's columns meets no free run long enough.
        ok = np.ones(n_i, dtype=bool)
        for k, a, b in zip(ks, a_s, b_s, strict=True):
            ok &= occ.free_run[np.minimum(columns + k, occ.nc - 1)] >= (b - a + 1)
        columns = columns[ok]
    for i in columns:
        if len(ks):
            rows = np.minimum(i + ks, occ.nc - 1)[:, None]
            hi = np.minimum(js[None, :] + b_s[:, None] + 1, occ.nr)
            lo = np.minimum(js[None, :] + a_s[:, None], occ.nr)
            blocked = (occ.prefix[rows, hi] - occ.prefix[rows, lo]).any(axis=0)
            maybe = js[~blocked]
        else:
            maybe = js
        if len(maybe) == 0:
            continue
        x = x0 + float(i) * step
        ys = y0 + maybe * step
        offsets = np.column_stack([np.full(len(ys), x), ys])
        fit = _fits(pts, offsets, grown)
        if fit.any():
            y = float(ys[int(np.argmax(fit))])
            return _slide(pts, grown, x, y, x0, y0, step)
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
