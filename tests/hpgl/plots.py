"""HP-GL jobs as the factory sends them, and what each one draws.

Every generator returns the program text and the pen-down strokes it draws, in plotter units
(0.025 mm), in order: the independent answer an emulator's record must equal.

- ``sleeve_pattern``: a child's T-shirt short sleeve (size 110) pattern piece, 1:1 on A3
  paper (HP 7475A): cut line, dashed grain line, notches.
- ``graded_nest``: the half-front (cut on fold) and sleeve of the same T-shirt in sizes
  92-128, nested at 1:2 on A3, one pen per size, curves as short CAD-style segments (one PD per
  point): about 20,000 instructions.
- ``chest_logo_vinyl``: a heat-transfer vinyl badge for a T-shirt chest print (Roland CAMM-GL
  III): ring, star, weeding box, cut mirrored because the vinyl is applied face down.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

UNITS_PER_MM = 40

Point = tuple[float, float]
Stroke = tuple[int, tuple[tuple[int, int], ...]]


def bezier(p0: Point, p1: Point, p2: Point, p3: Point, step_mm: float) -> list[Point]:
    """A cubic Bézier sampled about every ``step_mm`` (start point excluded)."""
    length = math.dist(p0, p1) + math.dist(p1, p2) + math.dist(p2, p3)
    n = max(2, math.ceil(length / step_mm))
    out = []
    for i in range(1, n + 1):
        t = i / n
        a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t * t, t**3
        out.append((a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0],
                    a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]))
    return out


def line(p0: Point, p1: Point, step_mm: float) -> list[Point]:
    n = max(1, math.ceil(math.dist(p0, p1) / step_mm))
    return [(p0[0] + (p1[0] - p0[0]) * i / n, p0[1] + (p1[1] - p0[1]) * i / n)
            for i in range(1, n + 1)]


def tee_half_front(size_cm: int, step_mm: float) -> list[Point]:
    """Closed outline of a child's T-shirt half front in mm; x from the fold, y down from HPS."""
    g = (size_cm - 110) / 6  # grading steps from the base size 110
    length, half_chest = 420 + 20 * g, 175 + 7 * g
    neck_w, neck_d = 60 + 1.5 * g, 70 + 2 * g
    shoulder = (140 + 5 * g, 18 + 0.5 * g)
    underarm = (half_chest, 150 + 6 * g)
    hem = (half_chest + 5, length)
    pts: list[Point] = [(0.0, neck_d)]
    pts += bezier((0.0, neck_d), (neck_w * 0.75, neck_d), (neck_w, neck_d * 0.45), (neck_w, 0.0),
                  step_mm)
    pts += line((neck_w, 0.0), shoulder, step_mm)
    pts += bezier(shoulder, (shoulder[0] - 8, 80 + 3 * g), (underarm[0] - 25, underarm[1] - 10),
                  underarm, step_mm)
    pts += line(underarm, hem, step_mm)
    pts += line(hem, (0.0, length), step_mm)
    pts += line((0.0, length), (0.0, neck_d), step_mm)
    return pts


def tee_sleeve(size_cm: int, step_mm: float) -> list[Point]:
    """Closed outline of the matching short sleeve in mm (cap up, hem down)."""
    g = (size_cm - 110) / 6
    width, cap_h, length = 300 + 10 * g, 75 + 3 * g, 150 + 8 * g
    left, right = (0.0, cap_h), (width, cap_h)
    top = (width / 2, 0.0)
    pts: list[Point] = [left]
    pts += bezier(left, (width * 0.2, cap_h), (width * 0.3, 0.0), top, step_mm)
    pts += bezier(top, (width * 0.7, 0.0), (width * 0.8, cap_h), right, step_mm)
    pts += line(right, (width - 30, length), step_mm)
    pts += line((width - 30, length), (30.0, length), step_mm)
    pts += line((30.0, length), left, step_mm)
    return pts


def _units(p: Point) -> tuple[int, int]:
    return (round(p[0] * UNITS_PER_MM), round(p[1] * UNITS_PER_MM))


def _dedupe(points: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for p in points:
        if not out or out[-1] != p:
            out.append(p)
    return out


class HpglWriter:
    """Writes HP-GL the way CAD plot drivers do, and keeps the strokes it draws."""

    def __init__(self, *, points_per_pd: int = 1) -> None:
        self.parts: list[str] = []
        self.strokes: list[Stroke] = []
        self.pen = 0
        self.points_per_pd = points_per_pd

    def raw(self, text: str) -> None:
        self.parts.append(text)

    def select_pen(self, pen: int) -> None:
        self.pen = pen
        self.parts.append(f"SP{pen};\n")

    def polyline(self, points_mm: Sequence[Point]) -> None:
        pts = _dedupe(_units(p) for p in points_mm)
        self.parts.append(f"PU{pts[0][0]},{pts[0][1]};\n")
        rest = pts[1:]
        for k in range(0, len(rest), self.points_per_pd):
            coords = ",".join(f"{x},{y}" for x, y in rest[k : k + self.points_per_pd])
            self.parts.append(f"PD{coords};\n")
        self.strokes.append((self.pen, tuple(pts)))

    def text(self) -> str:
        return "".join(self.parts)


def _place(points: Sequence[Point], *, scale: float, origin: Point, rotate: bool) -> list[Point]:
    out = []
    for px, py in points:
        # rotate: the garment's length along the sheet's long side
        x, y = (py, px) if rotate else (px, py)
        out.append((origin[0] + x * scale, origin[1] + y * scale))
    return out


def sleeve_pattern() -> tuple[str, list[Stroke]]:
    w = HpglWriter(points_per_pd=4)
    w.raw("IN;\nVS20;\n")
    w.select_pen(1)
    origin = (40.0, 40.0)
    w.polyline(_place(tee_sleeve(110, 1.0), scale=1, origin=origin, rotate=False))
    # Notches: front single at the cap's left, back double at the right.
    for x in (60.0, 250.0, 256.0):
        w.polyline([(origin[0] + x, origin[1] + 40), (origin[0] + x, origin[1] + 48)])
    w.select_pen(2)
    w.raw("LT2,2;\n")  # dashed grain line
    w.polyline([(origin[0] + 150, origin[1] + 20), (origin[0] + 150, origin[1] + 140)])
    w.raw("LT;\nPU;\nSP0;\n")
    return w.text(), w.strokes


def graded_nest(sizes: Sequence[int] = (92, 98, 104, 110, 116, 122, 128),
                step_mm: float = 0.33) -> tuple[str, list[Stroke]]:
    w = HpglWriter(points_per_pd=1)
    w.raw("IN;\n")
    for i, size in enumerate(sizes):
        w.select_pen(i % 6 + 1)
        w.polyline(_place(tee_half_front(size, step_mm / 0.5), scale=0.5, origin=(15.0, 10.0),
                          rotate=True))
        w.polyline(_place(tee_sleeve(size, step_mm / 0.5), scale=0.5, origin=(15.0, 120.0),
                          rotate=False))
    w.raw("PU;\nSP0;\n")
    return w.text(), w.strokes


def _circle(center: Point, r: float, step_mm: float) -> list[Point]:
    n = max(12, math.ceil(2 * math.pi * r / step_mm))
    return [(center[0] + r * math.cos(2 * math.pi * i / n),
             center[1] + r * math.sin(2 * math.pi * i / n)) for i in range(n + 1)]


def chest_logo_vinyl(speed_cm_s: int = 20, copies: int = 1) -> tuple[str, list[Stroke]]:
    """A 90 mm badge for a chest print, mirrored (heat-transfer vinyl is cut face down).

    ``speed_cm_s``: 20 for plain vinyl; glitter and flock are cut slower. ``copies`` are laid
    side by side across the media, 130 mm apart.
    """
    w = HpglWriter(points_per_pd=8)
    w.raw(f"IN;\nVS{speed_cm_s};\nFS80;\n")
    w.select_pen(1)
    for copy in range(copies):
        dx = 130.0 * copy
        c = (60.0 + dx, 60.0)

        def mirror(points: list[Point], c: Point = c) -> list[Point]:
            return [(2 * c[0] - x, y) for x, y in points]

        w.polyline(mirror(_circle(c, 45, 0.5)))
        w.polyline(mirror(_circle(c, 40, 0.5)))
        star = []
        for i in range(11):
            r = 30 if i % 2 == 0 else 12
            a = math.pi / 2 + i * math.pi / 5
            star.append((c[0] + r * math.cos(a), c[1] + r * math.sin(a)))
        w.polyline(mirror(star))
        box = [(8.0 + dx, 8.0), (112.0 + dx, 8.0), (112.0 + dx, 112.0), (8.0 + dx, 112.0),
               (8.0 + dx, 8.0)]
        w.polyline(mirror(box))  # weeding box
    w.raw("PU;\nSP0;\n")
    return w.text(), w.strokes


def strokes_of(lines: Sequence[str]) -> list[Stroke]:
    """Replay normalised lines (absolute PU/PD only) into pen-down strokes."""
    strokes = []
    pen, pos, down = 0, (0, 0), False
    current: list[tuple[int, int]] = []
    for line in lines:
        m, body = line[:2], line[2:-1]
        nums = [int(v) for v in body.split(",")] if body else []
        if m in ("SP", "IN", "PU") and current:
            strokes.append((pen, tuple(current)))
            current = []
        if m == "SP":
            pen, down = (nums[0] if nums else 0), False
        elif m == "IN":
            down = False
        elif m in ("PU", "PD"):
            if m == "PD" and not down:
                current = [pos]
            down = m == "PD"
            for k in range(0, len(nums), 2):
                pos = (nums[k], nums[k + 1])
                if down:
                    current.append(pos)
    if current:
        strokes.append((pen, tuple(current)))
    return strokes
