"""Device-neutral toolpaths compiled per machine, read back, and previewed.

- :func:`compile_toolpaths` (job, profile) -> Program, in the machine's own language;
- :func:`parse_back` (lines, profile) -> strokes the machine will perform, in mm;
- :func:`render_preview_svg` (job, profile) -> an SVG drawn from the parsed-back program;
- :func:`preview_main` (argv) -> exit status, for ``station-agent preview``.
"""

from agent.toolpaths.bounds import BedLimits, ToolpathBoundsError
from agent.toolpaths.compiler import compile_for_target, compile_toolpaths, plan_for_target
from agent.toolpaths.parse_back import parse_back, parse_for_target
from agent.toolpaths.plan import CutSettings, PlannedPath
from agent.toolpaths.preview import preview_main, render_preview_svg, render_strokes_svg
from agent.toolpaths.strokes import Stroke, StrokeKind
from agent.toolpaths.target import Dialect, MachineTarget, target_for

__all__ = [
    "BedLimits",
    "CutSettings",
    "Dialect",
    "MachineTarget",
    "PlannedPath",
    "Stroke",
    "StrokeKind",
    "ToolpathBoundsError",
    "compile_for_target",
    "compile_toolpaths",
    "parse_back",
    "parse_for_target",
    "plan_for_target",
    "preview_main",
    "render_preview_svg",
    "render_strokes_svg",
    "target_for",
]
