"""The job a planner publishes on ``<prefix>/<station>/job``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from agent.schemas.base import WireModel
from agent.schemas.pattern import PatternSource, Placement, SvgSource
from agent.schemas.toolpaths import Toolpaths

JobId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]


class JobKind(StrEnum):
    GCODE = "gcode"
    HPGL = "hpgl"
    TOOLPATHS = "toolpaths"
    PATTERN = "pattern"
    SVG = "svg"


class JobRequest(WireModel):
    v: Literal[1] = 1
    job_id: JobId
    kind: JobKind
    # The machine program, for kind gcode or hpgl.
    program: str | None = None
    # Device-neutral geometry in millimetres, for kind toolpaths.
    toolpaths: Toolpaths | None = None
    # A pattern file (AAMA/ASTM DXF) and where its pieces go, for kind pattern.
    pattern: PatternSource | None = None
    placement: Placement | None = None
    # An SVG drawing, for kind svg.
    svg: SvgSource | None = None
    copies: Annotated[int, Field(ge=1, le=1000)] = 1
    spacing_mm: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] = 10.0
    # Toolpaths jobs: where the job's (0, 0) lands on the bed, after turning the job
    # counter-clockwise about its (0, 0) by rotation_deg.
    origin_mm: tuple[
        Annotated[float, Field(ge=-100_000, le=100_000, allow_inf_nan=False)],
        Annotated[float, Field(ge=-100_000, le=100_000, allow_inf_nan=False)],
    ] = (0.0, 0.0)
    rotation_deg: Annotated[float, Field(ge=-360, le=360, allow_inf_nan=False)] = 0.0
    # Hold the job until the operator presses the station's start button.
    require_operator_start: bool = False
    operator_timeout_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] | None = None
    # Free-form labels from the planner (order, garment, size), echoed in events.
    meta: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=256)]] = Field(
        default_factory=dict, max_length=32
    )

    @model_validator(mode="after")
    def _program_matches_kind(self) -> JobRequest:
        if self.kind is JobKind.PATTERN:
            if self.pattern is None:
                raise ValueError("a pattern job needs 'pattern'")
            if self.program is not None or self.toolpaths is not None:
                raise ValueError("a pattern job takes 'pattern', not 'program' or 'toolpaths'")
            return self
        if self.pattern is not None or self.placement is not None:
            raise ValueError("'pattern' and 'placement' belong to pattern jobs")
        if self.kind is JobKind.SVG:
            if self.svg is None:
                raise ValueError("an svg job needs 'svg'")
            if self.program is not None or self.toolpaths is not None:
                raise ValueError("an svg job takes 'svg', not 'program' or 'toolpaths'")
            return self
        if self.svg is not None:
            raise ValueError("'svg' belongs to svg jobs")
        if self.kind in (JobKind.GCODE, JobKind.HPGL):
            if self.program is None:
                raise ValueError(f"a {self.kind.value} job needs 'program'")
            if self.toolpaths is not None:
                raise ValueError(f"a {self.kind.value} job takes 'program', not 'toolpaths'")
        elif self.toolpaths is None:
            raise ValueError("a toolpaths job needs 'toolpaths'")
        elif self.program is not None:
            raise ValueError("a toolpaths job takes 'toolpaths', not 'program'")
        return self
