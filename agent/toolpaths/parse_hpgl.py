"""Read HP-GL back into strokes (see parse_back)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from agent.errors import ProgramError
from agent.profiles.toolpath import ToolpathSettings
from agent.toolpaths.geometry import XY
from agent.toolpaths.stroke_builder import StrokeBuilder
from agent.toolpaths.strokes import Stroke, StrokeKind

_INSTRUCTION = re.compile(r"^([A-Z]{2})([^;]*)$")
# Instructions that neither move nor lower the pen.
_QUIET = {"IW", "IP", "SC", "DF", "OS", "OE", "OI", "OA", "OH", "LT", "FS"}


def parse_hpgl(lines: Sequence[str], settings: ToolpathSettings) -> list[Stroke]:
    scale = 1.0 / settings.units_per_mm
    builder = StrokeBuilder()
    pos: XY = (0.0, 0.0)
    pen_down = False
    pen = 0
    relative = False
    speed: float | None = None
    for number, raw in enumerate(lines, start=1):
        for instruction in (part.strip() for part in raw.split(";")):
            if not instruction:
                continue
            m = _INSTRUCTION.match(instruction.upper())
            if m is None:
                raise ProgramError(
                    f"line {number}: cannot read {instruction[:16]!r}",
                    code="invalid_program",
                    line=number,
                )
            op, args = m.group(1), _numbers(m.group(2), number)
            if op == "IN":
                pen_down, relative = False, False
            elif op == "SP":
                pen = int(args[0]) if args else 0
                pen_down = False  # the device lifts to change tools
                builder.flush()
            elif op == "VS":
                speed = args[0] * 10.0 if args else None
            elif op in ("PA", "PR", "PU", "PD"):
                if op == "PA":
                    relative = False
                elif op == "PR":
                    relative = True
                elif op == "PU":
                    pen_down = False
                    builder.flush()
                else:
                    pen_down = True
                if len(args) % 2:
                    raise ProgramError(
                        f"line {number}: odd number of coordinates in {op}",
                        code="invalid_program",
                        line=number,
                    )
                for i in range(0, len(args), 2):
                    dx, dy = args[i] * scale, args[i + 1] * scale
                    end = (pos[0] + dx, pos[1] + dy) if relative else (dx, dy)
                    cutting = pen_down and pen != 0
                    kind = StrokeKind.CUT if cutting else StrokeKind.TRAVEL
                    builder.move(pos, end, kind, number, speed_mm_s=speed if cutting else None)
                    pos = end
            elif op not in _QUIET:
                raise ProgramError(
                    f"line {number}: {op} is not understood by the preview",
                    code="invalid_program",
                    line=number,
                )
    return builder.finish()


def _numbers(text: str, number: int) -> list[float]:
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        return [float(p) for p in parts]
    except ValueError:
        raise ProgramError(
            f"line {number}: bad number in {text[:16]!r}", code="invalid_program", line=number
        ) from None
