"""Read GRBL or Marlin G-code back into strokes (see parse_back)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from agent.errors import ProgramError
from agent.profiles.toolpath import LiftMethod, ToolpathSettings
from agent.toolpaths.geometry import XY
from agent.toolpaths.stroke_builder import StrokeBuilder
from agent.toolpaths.strokes import Stroke, StrokeKind

_WORD = re.compile(r"([A-Z])([+-]?(?:\d+\.?\d*|\.\d+))")
_COMMENT = re.compile(r"\([^()]*\)|;.*$")
# Modal codes that change nothing this reader tracks (plane, feed mode, coolant/air, end).
_IGNORED_G = {17.0, 94.0, 54.0}
_IGNORED_M = {2.0, 7.0, 8.0, 9.0, 30.0, 400.0}


def _normalise(line: str) -> str:
    return _COMMENT.sub("", line).replace(" ", "").replace("\t", "").upper()


def parse_gcode(lines: Sequence[str], settings: ToolpathSettings) -> list[Stroke]:
    lift = settings.lift
    servo_up = _normalise(lift.servo_up) if lift and lift.method is LiftMethod.SERVO else None
    servo_down = _normalise(lift.servo_down) if lift and lift.method is LiftMethod.SERVO else None
    z_cut_below = None
    if lift is not None and lift.method is LiftMethod.Z:
        z_cut_below = lift.z_up_mm - 0.5 / settings.units_per_mm
    laser = settings.laser
    builder = StrokeBuilder()
    pos: XY = (0.0, 0.0)
    z: float | None = None
    motion = 0
    feed: float | None = None
    power = 0.0
    beam = False
    servo_down_now = False
    scale = 1.0
    relative = False
    for number, raw in enumerate(lines, start=1):
        line = _normalise(raw)
        if not line:
            continue
        # A lift or a plunge ends the stroke even where X and Y do not change.
        if servo_up is not None and line == servo_up:
            servo_down_now = False
            builder.flush()
            continue
        if servo_down is not None and line == servo_down:
            servo_down_now = True
            builder.flush()
            continue
        words = _words(line, number)
        target_x: float | None = None
        target_y: float | None = None
        target_z: float | None = None
        for letter, value in words:
            if letter == "G":
                if value in (0.0, 1.0):
                    motion = int(value)
                elif value == 20.0:
                    scale = 25.4
                elif value == 21.0:
                    scale = 1.0
                elif value == 90.0:
                    relative = False
                elif value == 91.0:
                    relative = True
                elif value == 4.0 or value in _IGNORED_G:
                    pass
                else:
                    raise ProgramError(
                        f"line {number}: G{value:g} is not understood by the preview",
                        code="invalid_program",
                        line=number,
                    )
            elif letter == "M":
                if value in (3.0, 4.0):
                    beam = True
                elif value == 5.0:
                    beam = False
                    builder.flush()
                elif value not in _IGNORED_M:
                    raise ProgramError(
                        f"line {number}: M{value:g} is not understood by the preview",
                        code="invalid_program",
                        line=number,
                    )
            elif letter == "X":
                target_x = value * scale
            elif letter == "Y":
                target_y = value * scale
            elif letter == "Z":
                target_z = value * scale
            elif letter == "F":
                feed = value * scale
            elif letter == "S":
                power = value
            # P (dwell time) and other parameters move nothing.
        if target_z is not None:
            z = (z or 0.0) + target_z if relative else target_z
            builder.flush()
        if target_x is None and target_y is None:
            continue
        if relative:
            end = (pos[0] + (target_x or 0.0), pos[1] + (target_y or 0.0))
        else:
            end = (
                pos[0] if target_x is None else target_x,
                pos[1] if target_y is None else target_y,
            )
        speed = None if feed is None else feed / 60.0
        if laser is not None:
            cutting = motion == 1 and beam and power > 0
            pct = power / laser.s_max * 100.0 if cutting else None
            kind = StrokeKind.CUT if cutting else StrokeKind.TRAVEL
            builder.move(
                pos, end, kind, number, speed_mm_s=speed if cutting else None, power_pct=pct
            )
        else:
            if z_cut_below is not None:
                cutting = z is not None and z < z_cut_below
            else:
                cutting = servo_down_now
            if cutting:
                builder.move(pos, end, StrokeKind.CUT, number, speed_mm_s=speed)
            else:
                builder.move(pos, end, StrokeKind.TRAVEL, number)
        pos = end
    return builder.finish()


def _words(line: str, number: int) -> list[tuple[str, float]]:
    words: list[tuple[str, float]] = []
    at = 0
    while at < len(line):
        m = _WORD.match(line, at)
        if m is None:
            raise ProgramError(
                f"line {number}: cannot read {line[at : at + 12]!r}",
                code="invalid_program",
                line=number,
            )
        words.append((m.group(1), float(m.group(2))))
        at = m.end()
    return words
