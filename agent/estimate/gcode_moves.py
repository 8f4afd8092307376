"""Read a GRBL program into the planner's straight moves and its dwells, as GRBL would.

Lines are read with the same rules as the firmware (``agent.reading.grbl``: comments,
whitespace, case). Motion follows ``gcode.c``: modal G0/G1/G2/G3, G90/G91, G20/G21, F (modal
feed, in the current units), G4 P (seconds). Arcs are cut into chords like ``motion_control.c``
``mc_arc``: ``segments = floor(0.5 * |angle| * r / sqrt(tol * (2r - tol)))`` with ``$12`` as
``tol``, in the XY plane (G17; the agent's toolpaths only emit XY arcs). A line this reader cannot
follow (a word it does not know) counts as no motion: the estimate is then a lower bound, and
:class:`ProgramMotion` says how many lines that was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.estimate.planner import StraightMove
from agent.reading.grbl import ReadError, g_command, preprocess, read_words

_MM_PER_INCH = 25.4
_ARC_EPSILON = 5e-7  # config.h ARC_ANGULAR_TRAVEL_EPSILON
# G commands that change nothing the estimate needs (plane, offsets in use, feed mode, ...).
_NO_MOTION = frozenset({"G17", "G40", "G49", "G54", "G61", "G80", "G94"})


@dataclass
class ProgramMotion:
    """What a program asks the machine to do, in order: moves, and dwells between them."""

    segments: list[list[StraightMove]] = field(default_factory=lambda: [[]])
    # For each segment, the index of the line each of its moves came from.
    move_lines: list[list[int]] = field(default_factory=lambda: [[]])
    # (line index, seconds) of each dwell.
    dwells: list[tuple[int, float]] = field(default_factory=list)
    unread_lines: int = 0
    line_count: int = 0

    @property
    def dwell_s(self) -> float:
        return sum(seconds for _, seconds in self.dwells)

    def add_move(self, move: StraightMove) -> None:
        self.segments[-1].append(move)
        self.move_lines[-1].append(self.line_count - 1)

    def add_stop(self, seconds: float) -> None:
        """A dwell (or any full stop): the planner empties before it, then waits."""
        self.dwells.append((self.line_count - 1, seconds))
        if self.segments[-1]:
            self.segments.append([])
            self.move_lines.append([])


@dataclass
class _Modal:
    motion: str = "G0"
    absolute: bool = True
    scale: float = 1.0
    feed_mm_min: float = 0.0
    position: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])


def read_motion(lines: Iterable[str], arc_tolerance_mm: float = 0.002) -> ProgramMotion:
    out = ProgramMotion()
    modal = _Modal()
    for raw in lines:
        out.line_count += 1
        text = preprocess(raw, max_chars=None).text
        if not text or text.startswith("$"):
            continue
        try:
            _read_line(text, modal, out, arc_tolerance_mm)
        except (ReadError, ValueError, ZeroDivisionError):
            out.unread_lines += 1
    return out


def _read_line(text: str, modal: _Modal, out: ProgramMotion, arc_tolerance_mm: float) -> None:
    values: dict[str, float] = {}
    dwell = False
    for word in read_words(text):
        if word.letter == "G":
            dwell = _set_mode(g_command(word), modal) or dwell
        elif word.letter != "M":
            values[word.letter] = word.value
    if "F" in values:
        modal.feed_mm_min = values["F"] * modal.scale
    if dwell:
        out.add_stop(values.get("P", 0.0))
        return
    if not any(axis in values for axis in "XYZ"):
        return
    target = list(modal.position)
    for index, axis in enumerate("XYZ"):
        if axis in values:
            value = values[axis] * modal.scale
            target[index] = value if modal.absolute else modal.position[index] + value
    feed = None if modal.motion == "G0" else modal.feed_mm_min
    if modal.motion in ("G2", "G3"):
        offset = (values.get("I", 0.0) * modal.scale, values.get("J", 0.0) * modal.scale)
        for point in _arc_points(modal.position, target, offset, modal.motion == "G2",
                                 arc_tolerance_mm):
            _straight(out, modal, point, feed)
    else:
        _straight(out, modal, target, feed)


def _set_mode(name: str, modal: _Modal) -> bool:
    """Apply one G command to the modal state; True for a dwell (G4)."""
    if name in ("G0", "G1", "G2", "G3"):
        modal.motion = name
    elif name in ("G90", "G91"):
        modal.absolute = name == "G90"
    elif name in ("G20", "G21"):
        modal.scale = _MM_PER_INCH if name == "G20" else 1.0
    elif name == "G4":
        return True
    elif name not in _NO_MOTION:
        raise ValueError(f"{name}: motion this reader does not follow")
    return False


def _straight(out: ProgramMotion, modal: _Modal, target: list[float], feed: float | None
              ) -> None:
    delta = (target[0] - modal.position[0], target[1] - modal.position[1],
             target[2] - modal.position[2])
    out.add_move(StraightMove(delta, feed))
    modal.position = list(target)


def _arc_points(start: list[float], end: list[float], offset: tuple[float, float],
                clockwise: bool, tolerance: float) -> list[list[float]]:
    """motion_control.c mc_arc: chord end points from ``start`` to ``end`` around the centre
    ``start + offset``; the last point is ``end`` itself."""
    cx, cy = start[0] + offset[0], start[1] + offset[1]
    radius = math.hypot(offset[0], offset[1])
    a0 = math.atan2(start[1] - cy, start[0] - cx)
    a1 = math.atan2(end[1] - cy, end[0] - cx)
    # The signed angle between the two radii, in (-pi, pi], as mc_arc's atan2 gives it.
    travel = math.atan2(math.sin(a1 - a0), math.cos(a1 - a0))
    if clockwise and travel >= -_ARC_EPSILON:
        travel -= 2 * math.pi
    elif not clockwise and travel <= _ARC_EPSILON:
        travel += 2 * math.pi
    segments = int(abs(0.5 * travel * radius) / math.sqrt(tolerance * (2 * radius - tolerance)))
    points = []
    for k in range(1, segments):
        angle = a0 + travel * k / segments
        z = start[2] + (end[2] - start[2]) * k / segments
        points.append([cx + radius * math.cos(angle), cy + radius * math.sin(angle), z])
    points.append(list(end))
    return points
