"""Plane geometry on polylines in millimetres: pure functions, no machine knowledge."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

XY = tuple[float, float]
Polyline = list[XY]


def transform(points: Sequence[XY], rotation_deg: float, dx: float, dy: float) -> Polyline:
    """Turn counter-clockwise about (0, 0), then move by (dx, dy)."""
    if rotation_deg == 0.0:
        return [(x + dx, y + dy) for x, y in points]
    a = math.radians(rotation_deg)
    c, s = math.cos(a), math.sin(a)
    return [(x * c - y * s + dx, x * s + y * c + dy) for x, y in points]


def bbox(points: Sequence[XY]) -> tuple[float, float, float, float]:
    """(min_x, min_y, max_x, max_y)."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def drop_repeats(points: Sequence[XY]) -> Polyline:
    """The polyline without consecutive duplicate points."""
    out: Polyline = [points[0]]
    for p in points[1:]:
        if p != out[-1]:
            out.append(p)
    return out


def close_ring(points: Sequence[XY]) -> Polyline:
    """A closed path as a polyline that returns to its start."""
    ring = drop_repeats(points)
    if ring[0] != ring[-1]:
        ring.append(ring[0])
    return ring


def open_ring(points: Sequence[XY]) -> Polyline:
    """A closed path's vertices without the repeated start."""
    ring = drop_repeats(points)
    if len(ring) > 1 and ring[0] == ring[-1]:
        ring.pop()
    return ring


def signed_area(ring: Sequence[XY]) -> float:
    """Shoelace area of the ring given by its vertices: positive when counter-clockwise."""
    total = 0.0
    n = len(ring)
    for i in range(n):
        x1, y1 = ring[i]
        x2, y2 = ring[(i + 1) % n]
        total += x1 * y2 - x2 * y1
    return total / 2.0


def polygon_area(ring: Sequence[XY]) -> float:
    """Unsigned area (shoelace) of the ring given by its vertices."""
    return abs(signed_area(ring))


def point_in_polygon(point: XY, ring: Sequence[XY]) -> bool:
    """Even-odd ray casting; points on the boundary may go either way."""
    x, y = point
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def walk(points: Sequence[XY], distance: float) -> Polyline:
    """The first ``distance`` mm of a polyline (used to overcut past a closed path's start)."""
    out: Polyline = [points[0]]
    left = distance
    for a, b in itertools.pairwise(points):
        seg = math.dist(a, b)
        if seg == 0.0:
            continue
        if seg >= left:
            t = left / seg
            out.append((a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t))
            return out
        out.append(b)
        left -= seg
    return out


def with_overcut(ring_closed: Sequence[XY], overcut_mm: float) -> Polyline:
    """A closed polyline (start repeated at the end) cut on past its start by ``overcut_mm``.

    The overcut retraces the first segments, at most one full lap.
    """
    path = list(ring_closed)
    if overcut_mm <= 0.0:
        return path
    perimeter = sum(math.dist(a, b) for a, b in itertools.pairwise(path))
    extra = walk(path, min(overcut_mm, perimeter))
    return path + extra[1:]


def _unit(a: XY, b: XY) -> XY:
    d = math.dist(a, b)
    return ((b[0] - a[0]) / d, (b[1] - a[1]) / d)


def blade_offset(
    points: Sequence[XY],
    offset_mm: float,
    corner_threshold_deg: float,
    swivel_step_deg: float,
    entry_direction: XY | None = None,
) -> Polyline:
    """Where the knife holder's axis must go so a drag blade's tip follows ``points``.

    The tip trails the axis by ``offset_mm`` in the direction of travel, so the axis runs
    ``offset_mm`` ahead of each vertex along the segment that reaches it. Where the direction turns
    by more than ``corner_threshold_deg`` the axis swings on an arc of radius ``offset_mm`` about
    the vertex, turning the blade in place; gentler turns are left to the blade's own drag.

    ``entry_direction`` is where the blade points when it goes down (where the last cut left
    it): the axis goes down one offset from the start that way and swivels the blade round
    to the first direction before cutting on. Every output point lies within ``offset_mm`` of
    the input polyline.
    """
    pts = drop_repeats(points)
    if offset_mm <= 0.0 or len(pts) < 2:
        return list(pts)
    dirs = [_unit(a, b) for a, b in itertools.pairwise(pts)]
    first = pts[0]
    out: Polyline = []
    entry: Polyline = []
    if entry_direction is not None:
        entry = _swivel(
            first,
            entry_direction,
            dirs[0],
            offset_mm,
            threshold_deg=corner_threshold_deg,
            step_deg=swivel_step_deg,
        )
    if entry_direction is not None and entry:
        out.append(
            (first[0] + entry_direction[0] * offset_mm, first[1] + entry_direction[1] * offset_mm)
        )
        out += entry
    else:
        out.append((first[0] + dirs[0][0] * offset_mm, first[1] + dirs[0][1] * offset_mm))
    for i, d in enumerate(dirs):
        v = pts[i + 1]
        out.append((v[0] + d[0] * offset_mm, v[1] + d[1] * offset_mm))
        if i + 1 < len(dirs):
            out += _swivel(
                v,
                d,
                dirs[i + 1],
                offset_mm,
                threshold_deg=corner_threshold_deg,
                step_deg=swivel_step_deg,
            )
    return out


def _swivel(
    pivot: XY, old: XY, new: XY, radius: float, *, threshold_deg: float, step_deg: float
) -> Polyline:
    """The arc about ``pivot`` from direction ``old`` to ``new`` (after the start, ending
    exactly at pivot + radius * new), or nothing when the turn is gentle."""
    start = math.atan2(old[1], old[0])
    turn = math.atan2(new[1], new[0]) - start
    turn = (turn + math.pi) % (2.0 * math.pi) - math.pi  # shortest way round
    if abs(math.degrees(turn)) <= threshold_deg:
        return []
    steps = max(1, math.ceil(abs(math.degrees(turn)) / step_deg))
    arc = [
        (pivot[0] + math.cos(a) * radius, pivot[1] + math.sin(a) * radius)
        for a in (start + turn * k / steps for k in range(1, steps))
    ]
    arc.append((pivot[0] + new[0] * radius, pivot[1] + new[1] * radius))
    return arc


def last_direction(points: Sequence[XY]) -> XY | None:
    """Unit direction of the polyline's last segment of non-zero length."""
    for i in range(len(points) - 1, 0, -1):
        if points[i] != points[i - 1]:
            return _unit(points[i - 1], points[i])
    return None


def distance_to_segment(p: XY, a: XY, b: XY) -> float:
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    if length2 == 0.0:
        return math.dist(p, a)
    t = max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / length2))
    return math.dist(p, (ax + t * dx, ay + t * dy))


def distance_to_polyline(p: XY, points: Sequence[XY]) -> float:
    if len(points) == 1:
        return math.dist(p, points[0])
    return min(distance_to_segment(p, a, b) for a, b in itertools.pairwise(points))
