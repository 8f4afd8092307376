"""Sample garment work for the demo, the tests and the benchmarks: real shapes, in millimetres.

A men's T-shirt, size M: front and back bodies (with the neckline), two sleeves, and a woven
care label. Outlines are polylines; curves (neckline, armholes, sleeve cap, hem corners) are
sampled finely so a job has the many short segments real cutting files have.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

Point = tuple[float, float]


def _arc(cx: float, cy: float, r: float, a0: float, a1: float, n: int) -> list[Point]:
    return [
        (cx + r * math.cos(math.radians(a0 + (a1 - a0) * i / n)),
         cy + r * math.sin(math.radians(a0 + (a1 - a0) * i / n)))
        for i in range(n + 1)
    ]


def _bezier(p0: Point, p1: Point, p2: Point, p3: Point, n: int) -> list[Point]:
    out = []
    for i in range(n + 1):
        t = i / n
        u = 1 - t
        out.append((
            u**3 * p0[0] + 3 * u * u * t * p1[0] + 3 * u * t * t * p2[0] + t**3 * p3[0],
            u**3 * p0[1] + 3 * u * u * t * p1[1] + 3 * u * t * t * p2[1] + t**3 * p3[1],
        ))
    return out


def tshirt_body(neck_depth_mm: float, detail: int = 24) -> list[Point]:
    """Half-width 260 mm, length 720 mm; origin at the hem's left corner. Closed outline."""
    w, length = 520.0, 720.0
    shoulder_drop, neck_w, armhole_depth = 45.0, 190.0, 240.0
    shoulder_w = 150.0
    pts: list[Point] = [(0.0, 0.0), (w, 0.0), (w, length - armhole_depth)]
    # right armhole: from the side seam up to the shoulder point
    pts += _bezier((w, length - armhole_depth), (w - 40, length - 120), (w - 70, length - 60),
                   (w - 60, length - shoulder_drop), detail)[1:]
    # right shoulder up to the neck point
    neck_r = (w - neck_w) / 2 + neck_w
    pts.append((neck_r, length))
    # neckline: a curve down to neck_depth and back up
    pts += _bezier((neck_r, length), (neck_r - 10, length - neck_depth_mm),
                   ((w - neck_w) / 2 + 10, length - neck_depth_mm), ((w - neck_w) / 2, length),
                   detail * 2)[1:]
    pts.append((60.0, length - shoulder_drop))
    pts += _bezier((60.0, length - shoulder_drop), (70, length - 60), (40, length - 120),
                   (0.0, length - armhole_depth), detail)[1:]
    del shoulder_w
    return pts


def tshirt_sleeve(detail: int = 24) -> list[Point]:
    """Sleeve, 220 mm long, cap 470 mm wide at the bicep line. Closed outline."""
    width, length, cap = 470.0, 220.0, 130.0
    pts: list[Point] = [(40.0, 0.0), (width - 40.0, 0.0), (width, length - cap)]
    pts += _bezier((width, length - cap), (width - 90, length + 10), (width / 2 + 60, length),
                   (width / 2, length), detail)[1:]
    pts += _bezier((width / 2, length), (width / 2 - 60, length), (90, length - 40),
                   (0.0, length - cap), detail)[1:]
    return pts


def care_label() -> list[list[Point]]:
    """A 40 x 60 mm care label: rounded outline plus a washing-tub symbol to engrave."""
    r = 3.0
    outline: list[Point] = []
    for cx, cy, a0 in ((37.0, 3.0, 270.0), (37.0, 57.0, 0.0), (3.0, 57.0, 90.0), (3.0, 3.0, 180.0)):
        outline += _arc(cx, cy, r, a0, a0 + 90.0, 6)
    tub = [(10.0, 40.0), (12.0, 30.0), (28.0, 30.0), (30.0, 40.0)]
    wave = [(10.0 + i * 2.0, 42.0 + (1.0 if i % 2 else 0.0)) for i in range(11)]
    text_line = [(8.0, 20.0), (32.0, 20.0)]
    return [outline, tub, wave, text_line]


def tshirt_pieces() -> list[tuple[str, list[Point], Point]]:
    """(name, closed outline, placement offset on the bed) for one T-shirt."""
    return [
        ("front", tshirt_body(neck_depth_mm=95.0), (20.0, 20.0)),
        ("back", tshirt_body(neck_depth_mm=25.0), (560.0, 20.0)),
        ("sleeve-left", tshirt_sleeve(), (1100.0, 20.0)),
        ("sleeve-right", tshirt_sleeve(), (1100.0, 300.0)),
    ]


def _fmt(v: float) -> str:
    text = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def knife_gcode(pieces: Iterable[tuple[str, Sequence[Point], Point]], *, feed_mm_min: int = 3000,
                z_up: float = 5.0, z_down: float = -1.0, with_comments: bool = True) -> str:
    """GRBL G-code for a drag-knife cutter (blade on Z): cut each closed outline."""
    lines = ["G21 G90 G94", "G17"] if with_comments else ["G21G90G94", "G17"]
    for name, pts, (ox, oy) in pieces:
        if with_comments:
            lines.append(f"(piece {name})")
        x0, y0 = pts[0]
        lines.append(f"G0 Z{_fmt(z_up)}")
        lines.append(f"G0 X{_fmt(x0 + ox)} Y{_fmt(y0 + oy)}")
        lines.append(f"G1 Z{_fmt(z_down)} F600")
        first = True
        for x, y in [*pts[1:], pts[0]]:
            feed = f" F{feed_mm_min}" if first else ""
            lines.append(f"G1 X{_fmt(x + ox)} Y{_fmt(y + oy)}{feed}")
            first = False
        lines.append(f"G0 Z{_fmt(z_up)}")
    lines.append("G0 X0 Y0")
    return "\n".join(lines) + "\n"


def tshirt_knife_job(min_lines: int = 0) -> str:
    """A T-shirt's pieces cut with a drag knife; with ``min_lines``, a run of several shirts
    (each set placed on a fresh stretch of the bed) until the program has at least that many."""
    detail = 24
    program = knife_gcode(_scaled_pieces(detail))
    while min_lines and program.count("\n") < min_lines:
        detail += 8
        program = knife_gcode(_scaled_pieces(detail))
    return program


def _scaled_pieces(detail: int) -> list[tuple[str, list[Point], Point]]:
    return [
        ("front", tshirt_body(95.0, detail), (20.0, 20.0)),
        ("back", tshirt_body(25.0, detail), (560.0, 20.0)),
        ("sleeve-left", tshirt_sleeve(detail), (1100.0, 20.0)),
        ("sleeve-right", tshirt_sleeve(detail), (1100.0, 300.0)),
    ]


def short_segment_outline(n_lines: int, feed_mm_min: int = 6000, samples: int = 4000) -> str:
    """``n_lines`` G1 moves of about 0.5 mm tracing a sleeve cap again and again (a benchmark
    of streaming short segments, the hardest case for a sender)."""
    cap = _bezier((0.0, 0.0), (90.0, 140.0), (290.0, 130.0), (380.0, 0.0), samples)
    lines = ["G21G90G94", f"G1F{feed_mm_min}"]
    i = 0
    forward = True
    while len(lines) < n_lines:
        x, y = cap[i]
        lines.append(f"G1X{_fmt(x + 100)}Y{_fmt(y + 100)}")
        i = i + 1 if forward else i - 1
        if i in (0, len(cap) - 1):
            forward = not forward
    return "\n".join(lines[:n_lines]) + "\n"
