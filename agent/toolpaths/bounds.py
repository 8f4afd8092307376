"""The bed check: nothing leaves the machine's working area, checked before anything is sent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.errors import ProgramError
from agent.toolpaths.geometry import XY

OUT_OF_BOUNDS = "out_of_bounds"


@dataclass(frozen=True)
class BedLimits:
    """The usable area in mm, origin (0, 0); ``unit_mm`` is the machine's resolution.

    A point may lie up to half a machine unit outside: it rounds onto the edge.
    """

    width_mm: float
    height_mm: float
    unit_mm: float


class ToolpathBoundsError(ProgramError):
    """The compiled job leaves the bed; ``extent_mm`` is (min_x, min_y, max_x, max_y)."""

    code = OUT_OF_BOUNDS

    def __init__(self, extent_mm: tuple[float, float, float, float], limits: BedLimits) -> None:
        min_x, min_y, max_x, max_y = extent_mm
        super().__init__(
            f"job reaches x {min_x:.3f}..{max_x:.3f} mm, y {min_y:.3f}..{max_y:.3f} mm after "
            f"offset, overcut and copies; the bed is x 0..{limits.width_mm:g}, "
            f"y 0..{limits.height_mm:g} mm",
            code=OUT_OF_BOUNDS,
        )
        self.extent_mm = extent_mm
        self.bed_mm = (limits.width_mm, limits.height_mm)


def extent(paths: Iterable[Sequence[XY]]) -> tuple[float, float, float, float]:
    min_x = min_y = float("inf")
    max_x = max_y = float("-inf")
    for pts in paths:
        for x, y in pts:
            min_x = min(min_x, x)
            max_x = max(max_x, x)
            min_y = min(min_y, y)
            max_y = max(max_y, y)
    return (min_x, min_y, max_x, max_y)


def check_bounds(paths: Iterable[Sequence[XY]], limits: BedLimits) -> None:
    """Raise ToolpathBoundsError when any point lies outside the bed."""
    box = extent(paths)
    # Just under half a unit: such a point rounds onto the edge, never past it.
    slack = limits.unit_mm * 0.49
    if (
        box[0] < -slack
        or box[1] < -slack
        or box[2] > limits.width_mm + slack
        or box[3] > limits.height_mm + slack
    ):
        raise ToolpathBoundsError(box, limits)
