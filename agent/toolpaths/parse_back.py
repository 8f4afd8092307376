"""Read a compiled program back into what the machine will do: cut strokes and travels, in mm.

This is the preview's source of truth and the tests' check on the emitters, so it reads the
machine's language as the machine does (modal words, pen state, beam state), not the planner's
data. Only the instructions the compiler writes are understood; anything else that moves or
changes units is refused rather than guessed.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.profiles import Profile
from agent.toolpaths.parse_gcode import parse_gcode
from agent.toolpaths.parse_hpgl import parse_hpgl
from agent.toolpaths.strokes import Stroke
from agent.toolpaths.target import Dialect, MachineTarget, target_for


def parse_back(lines: Sequence[str], profile: Profile) -> list[Stroke]:
    """Strokes, in order, that ``lines`` make ``profile``'s machine perform; raises ProgramError."""
    return parse_for_target(lines, target_for(profile))


def parse_for_target(lines: Sequence[str], target: MachineTarget) -> list[Stroke]:
    if target.dialect is Dialect.HPGL:
        return parse_hpgl(lines, target.settings)
    return parse_gcode(lines, target.settings)
