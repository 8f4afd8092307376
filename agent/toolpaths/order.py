"""Cut order: inside out, then the nearest next piece.

Once a piece is cut free the fabric inside it can shift, so every path lying inside a closed
path (a neck hole in a T-shirt front, a score line on a sleeve, a small piece nested in a big
one) is cut before the path that contains it. Among the paths that are free to go next, the one
whose entry point is nearest the knife goes first; a closed path may start at any of its
vertices (a few are sampled on long outlines) and an open path at either end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from agent.toolpaths.geometry import XY, bbox, point_in_polygon, polygon_area

# Entry points sampled on one closed path; more only lengthens the search.
_ENTRIES_PER_RING = 24
# Vertices of a path tested against a candidate container (majority wins: one on the boundary
# must not decide).
_CONTAINMENT_SAMPLES = 5


@dataclass(frozen=True)
class OrderItem:
    points: Sequence[XY]  # closed: the ring's vertices, start not repeated
    closed: bool


@dataclass(frozen=True)
class Visit:
    index: int  # into the items given
    start: int  # vertex the path starts at (closed: any; open: 0 or its last)
    reverse: bool  # open paths: run from the last point to the first


class _Grid:
    """Uniform buckets of points for nearest-point queries, with lazy removal."""

    def __init__(self, extent: tuple[float, float, float, float], count: int) -> None:
        min_x, min_y, max_x, max_y = extent
        span = max(max_x - min_x, max_y - min_y, 1.0)
        cells_per_side = max(1, min(1024, int(math.sqrt(max(count, 1)))))
        self.cell = span / cells_per_side
        self.min_x = min_x
        self.min_y = min_y
        self.n = cells_per_side + 1
        self.buckets: dict[tuple[int, int], list[tuple[XY, int, int]]] = {}
        self.size = 0

    def _key(self, p: XY) -> tuple[int, int]:
        i = int((p[0] - self.min_x) / self.cell)
        j = int((p[1] - self.min_y) / self.cell)
        return (min(max(i, 0), self.n - 1), min(max(j, 0), self.n - 1))

    def add(self, p: XY, item: int, vertex: int) -> None:
        self.buckets.setdefault(self._key(p), []).append((p, item, vertex))
        self.size += 1

    def nearest(self, p: XY, alive: list[bool]) -> tuple[int, int] | None:
        """(item, vertex) of the nearest live entry, or None when there is none."""
        ci, cj = self._key(p)
        best: tuple[float, int, int] | None = None
        for ring in range(self.n + 1):
            # Entries in rings beyond this one are at least (ring - 1) cells away.
            if best is not None and best[0] < (ring - 1) * self.cell:
                break
            for key in _ring_cells(ci, cj, ring, self.n):
                bucket = self.buckets.get(key)
                if not bucket:
                    continue
                live = [e for e in bucket if alive[e[1]]]
                if len(live) != len(bucket):
                    self.buckets[key] = live
                for q, item, vertex in live:
                    d = math.dist(p, q)
                    if best is None or d < best[0]:
                        best = (d, item, vertex)
        return None if best is None else (best[1], best[2])


def _ring_cells(ci: int, cj: int, ring: int, n: int) -> list[tuple[int, int]]:
    """The cells on the square ring ``ring`` cells away from (ci, cj), inside the grid."""
    if ring == 0:
        return [(ci, cj)]
    top_bottom = [(i, j) for i in range(ci - ring, ci + ring + 1) for j in (cj - ring, cj + ring)]
    sides = [(i, j) for j in range(cj - ring + 1, cj + ring) for i in (ci - ring, ci + ring)]
    return [(i, j) for i, j in top_bottom + sides if 0 <= i < n and 0 <= j < n]


def containers(items: Sequence[OrderItem]) -> list[int | None]:
    """For each item, the smallest closed item that contains it (None: it lies free)."""
    boxes = [bbox(it.points) for it in items]
    rings = [i for i, it in enumerate(items) if it.closed]
    areas = {i: polygon_area(items[i].points) for i in rings}
    rings.sort(key=lambda i: areas[i])
    parent: list[int | None] = [None] * len(items)
    if not rings:
        return parent
    # Index ring bounding boxes by a coarse grid so each item tests only nearby rings.
    extent = _union(boxes)
    grid_n = max(1, min(256, int(math.sqrt(len(rings)))))
    span_x = max(extent[2] - extent[0], 1e-9)
    span_y = max(extent[3] - extent[1], 1e-9)
    cells: dict[tuple[int, int], list[int]] = {}

    def cell_of(x: float, y: float) -> tuple[int, int]:
        i = min(grid_n - 1, max(0, int((x - extent[0]) / span_x * grid_n)))
        j = min(grid_n - 1, max(0, int((y - extent[1]) / span_y * grid_n)))
        return (i, j)

    for r in rings:  # smallest first, so each cell's list is sorted by area
        x0, y0, x1, y1 = boxes[r]
        (i0, j0), (i1, j1) = cell_of(x0, y0), cell_of(x1, y1)
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                cells.setdefault((i, j), []).append(r)

    for k, it in enumerate(items):
        box = boxes[k]
        own_area = areas.get(k, 0.0)
        samples = _samples(it.points)
        for r in cells.get(cell_of(box[0], box[1]), []):
            if r == k or areas[r] <= own_area:
                continue
            rb = boxes[r]
            if not (rb[0] <= box[0] and rb[1] <= box[1] and box[2] <= rb[2] and box[3] <= rb[3]):
                continue
            inside = sum(point_in_polygon(p, items[r].points) for p in samples)
            if inside * 2 > len(samples):
                parent[k] = r
                break
    return parent


def _samples(points: Sequence[XY]) -> list[XY]:
    n = len(points)
    if n <= _CONTAINMENT_SAMPLES:
        return list(points)
    return [points[(i * n) // _CONTAINMENT_SAMPLES] for i in range(_CONTAINMENT_SAMPLES)]


def _union(boxes: Sequence[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _entries(item: OrderItem) -> list[int]:
    n = len(item.points)
    if not item.closed:
        return [0, n - 1]
    if n <= _ENTRIES_PER_RING:
        return list(range(n))
    return sorted({(i * n) // _ENTRIES_PER_RING for i in range(_ENTRIES_PER_RING)})


def order_paths(items: Sequence[OrderItem], start: XY = (0.0, 0.0)) -> list[Visit]:
    """Every item once: contained paths before their container, short travel in between."""
    if not items:
        return []
    parent = containers(items)
    waiting = [0] * len(items)  # children not cut yet
    for p in parent:
        if p is not None:
            waiting[p] += 1
    entry_count = sum(len(_entries(it)) for it in items)
    grid = _Grid(_union([bbox(it.points) for it in items]), entry_count)
    alive = [False] * len(items)

    def release(k: int) -> None:
        alive[k] = True
        for v in _entries(items[k]):
            grid.add(items[k].points[v], k, v)

    for k in range(len(items)):
        if waiting[k] == 0:
            release(k)
    visits: list[Visit] = []
    here = start
    while len(visits) < len(items):
        found = grid.nearest(here, alive)
        if found is None:  # cannot happen: containment is acyclic (strictly growing area)
            raise RuntimeError("toolpath order: no path is free to cut")
        k, vertex = found
        alive[k] = False
        item = items[k]
        if item.closed:
            visits.append(Visit(k, vertex, reverse=False))
            here = item.points[vertex]
        else:
            rev = vertex != 0
            visits.append(Visit(k, 0, reverse=rev))
            here = item.points[0] if rev else item.points[-1]
        up = parent[k]
        if up is not None:
            waiting[up] -= 1
            if waiting[up] == 0:
                release(up)
    return visits
