"""``[toolpath.pattern]``: what a machine does with each pattern-file layer (pattern jobs).

Every key has a default, so a profile needs the section only to change one. An operation the
machine does not perform (not in ``[toolpath.ops]``) leaves the feature out, reported in the
job's ``accepted`` event with why.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from agent.strict import StrictModel

Mark = Literal["draw", "score", "skip"]


class PatternDefaults(StrictModel):
    # Notches (layers 4, 80-83): a slit this deep along the cut line's inward normal.
    notch_depth_mm: Annotated[float, Field(gt=0, le=30, allow_inf_nan=False)] = 5.0
    notch_op: Literal["cut", "score"] = "cut"
    # Drill holes (13): a cross this wide, drawn (pen, laser) or scored (knife), or skipped.
    drill_holes: Mark = "draw"
    drill_mark_mm: Annotated[float, Field(gt=0, le=20, allow_inf_nan=False)] = 4.0
    # Internal lines (8) and sew lines (14, 84).
    internal_lines: Mark = "draw"
    sew_lines: Mark = "draw"
