"""The job every sender streams: a T-shirt front's outline cut with a drag knife, as short G01
segments of 18-20 bytes with their newline (the hardest case for a sender: the most lines a
second of wire).

The lines are written as grbl-streamer's preprocessor would rewrite them (one modal group a
line, ``G00``/``G01``), so every sender puts the very same bytes on the wire.

The outline (agent.garments.tshirt_body, men's M, neckline 95 mm deep) is resampled at even
steps along its length, so the hem and side seams are short segments too, as a cutting file
from a CAD system that flattens every edge to its tolerance would have them.
"""

from __future__ import annotations

import itertools
import math

from agent.garments import Point, tshirt_body

ORIGIN = (20.0, 20.0)


def _fmt(v: float) -> str:
    return f"{v:.3f}"  # three decimals always, as CAM output has them


def resample(outline: list[Point], n: int) -> list[Point]:
    """``n`` points evenly spaced along the closed ``outline``, starting at its first point."""
    ring = [*outline, outline[0]]
    lengths = [math.dist(a, b) for a, b in itertools.pairwise(ring)]
    total = sum(lengths)
    out: list[Point] = []
    seg, walked = 0, 0.0
    for k in range(n):
        target = total * k / n
        while walked + lengths[seg] < target:
            walked += lengths[seg]
            seg += 1
        f = (target - walked) / lengths[seg] if lengths[seg] else 0.0
        (x0, y0), (x1, y1) = ring[seg], ring[seg + 1]
        out.append((x0 + (x1 - x0) * f, y0 + (y1 - y0) * f))
    return out


def tshirt_front_job(cut_lines: int = 3000) -> list[str]:
    """Set-up, knife down, ``cut_lines`` G01 moves round the front and back to the start, knife
    up. No comments or spaces: every sender sends these bytes as they are."""
    ox, oy = ORIGIN
    points = [(x + ox, y + oy) for x, y in resample(tshirt_body(95.0), cut_lines)]
    lines = ["G21", "G90", "G94", "G00Z5.000", f"G00X{_fmt(points[0][0])}Y{_fmt(points[0][1])}",
             "G01Z-1.000F600", "G01F3000"]
    lines += [f"G01X{_fmt(x)}Y{_fmt(y)}" for x, y in [*points[1:], points[0]]]
    lines += ["G00Z5.000", "G00X0.000Y0.000"]
    return lines
