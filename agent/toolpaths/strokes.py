"""What a machine program makes the machine do, in bed millimetres (the parse-back's result)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent.toolpaths.geometry import XY


class StrokeKind(StrEnum):
    CUT = "cut"  # tool down / beam on: the material is cut, scored or drawn on
    TRAVEL = "travel"  # tool up / beam off


@dataclass(frozen=True)
class Stroke:
    """A run of moves of one kind; ``points[0]`` is where the previous stroke ended.

    ``line`` is the 1-based program line of the stroke's first move.
    """

    kind: StrokeKind
    points: tuple[XY, ...]
    line: int
    speed_mm_s: float | None = None
    power_pct: float | None = None
