"""Device-neutral toolpaths in millimetres (kind ``toolpaths``).

Every station compiles the same job for its own machine (agent/toolpaths/), so the planner need
not care which cutter is free. Limits here reject absurd input at the wire; the compiler checks
what depends on the machine (bed, speeds, operations it performs).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from agent.schemas.base import WireModel

# Larger than any bed; the compiler rejects what leaves the actual one.
Coordinate = Annotated[float, Field(ge=-100_000, le=100_000, allow_inf_nan=False)]
Point = tuple[Coordinate, Coordinate]

# Points of one job before copies and passes.
MAX_JOB_POINTS = 2_000_000


class Operation(StrEnum):
    CUT = "cut"
    SCORE = "score"
    DRAW = "draw"


class ToolSettings(WireModel):
    speed_mm_s: Annotated[float, Field(gt=0, le=2000, allow_inf_nan=False)] | None = None
    force_g: Annotated[float, Field(ge=0, le=5000, allow_inf_nan=False)] | None = None
    power_pct: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    passes: Annotated[int, Field(ge=1, le=20)] | None = None


class Path(WireModel):
    points: Annotated[list[Point], Field(min_length=2, max_length=1_000_000)]
    closed: bool = False
    op: Operation = Operation.CUT
    tool: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")] = "default"
    # Overrides the job's settings for this path only.
    settings: ToolSettings | None = None

    @model_validator(mode="after")
    def _has_extent(self) -> Path:
        first = self.points[0]
        if all(p == first for p in self.points):
            raise ValueError("a path needs two distinct points")
        if self.closed and len(set(self.points)) < 3:
            raise ValueError("a closed path needs three distinct points")
        return self


class Toolpaths(WireModel):
    units: Literal["mm"] = "mm"
    paths: Annotated[list[Path], Field(min_length=1, max_length=100_000)]
    settings: ToolSettings = ToolSettings()
    # The job means to cut the same place more than once: copies whose placements touch or
    # overlap (spacing_mm 0, a shape with no width), or several passes on a machine that does
    # not normally repeat a cut (knives, pens). Without it such a job is rejected
    # (overlapping_copies, repeated_passes).
    repeat_same_place: bool = False

    @model_validator(mode="after")
    def _not_too_many_points(self) -> Toolpaths:
        total = sum(len(p.points) for p in self.paths)
        if total > MAX_JOB_POINTS:
            raise ValueError(f"{total} points in one job; at most {MAX_JOB_POINTS}")
        return self

    def point_count(self) -> int:
        return sum(len(p.points) for p in self.paths)
