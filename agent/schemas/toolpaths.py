"""Device-neutral toolpaths in millimetres (kind ``toolpaths``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from agent.schemas.base import WireModel

Coordinate = Annotated[float, Field(ge=-100_000, le=100_000, allow_inf_nan=False)]
Point = tuple[Coordinate, Coordinate]


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
    settings: ToolSettings | None = None


class Toolpaths(WireModel):
    units: Literal["mm"] = "mm"
    paths: Annotated[list[Path], Field(min_length=1, max_length=100_000)]
    settings: ToolSettings = ToolSettings()
