"""Join boundary fragments end to end into rings (AAMA exports split one cut line into many
polylines, in any order and direction)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.patterns.model import XY
from agent.toolpaths.geometry import signed_area


@dataclass(frozen=True)
class Chain:
    points: list[XY]
    closed: bool
    gap: float  # distance from last point back to the first


def _dist(a: XY, b: XY) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def chain_segments(segments: list[list[XY]], tolerance: float) -> list[Chain]:
    """Fragments joined greedily at ends closer than ``tolerance``.

    A fragment that is already a ring stays one. Joins are made at the chain's tail first, then
    at its head, each time to the nearest free end within the tolerance.
    """
    free = [list(s) for s in segments if len(s) >= 2]
    chains: list[Chain] = []
    while free:
        current = free.pop(0)
        if len(current) > 2 and _dist(current[0], current[-1]) <= tolerance:
            ring = current[:-1] if current[0] == current[-1] else current
            chains.append(Chain(without_near_repeats(ring), True, _dist(current[0], current[-1])))
            continue
        grown = True
        while grown and free:
            grown = False
            for at_tail in (True, False):
                end = current[-1] if at_tail else current[0]
                best, best_d, flip = -1, tolerance, False
                for i, seg in enumerate(free):
                    for reverse, point in ((False, seg[0]), (True, seg[-1])):
                        d = _dist(end, point)
                        if d <= best_d:
                            best, best_d, flip = i, d, reverse
                if best < 0:
                    continue
                seg = free.pop(best)
                if at_tail:
                    seg = seg[::-1] if flip else seg
                    current = current + seg[1:]
                else:
                    seg = seg if flip else seg[::-1]
                    current = seg[:-1] + current
                grown = True
                if _dist(current[0], current[-1]) <= tolerance and len(current) > 3:
                    break
            if _dist(current[0], current[-1]) <= tolerance and len(current) > 3:
                break
        gap = _dist(current[0], current[-1])
        closed = gap <= tolerance and len(current) > 3
        pts = current[:-1] if closed else current
        chains.append(Chain(without_near_repeats(pts), closed, gap))
    return chains


def without_near_repeats(points: list[XY]) -> list[XY]:
    """The points without consecutive ones closer than 1e-9 mm (flattening leaves such)."""
    out: list[XY] = []
    for p in points:
        if not out or _dist(out[-1], p) > 1e-9:
            out.append(p)
    return out


def oriented(ring: list[XY], ccw: bool) -> list[XY]:
    return ring if (signed_area(ring) > 0) == ccw else ring[::-1]
