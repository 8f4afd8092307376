"""Device-neutral toolpaths compiled per machine and read back.

- :func:`compile_toolpaths` (job, profile) -> Program, in the machine's own language;
- :func:`parse_back` (lines, profile) -> strokes the machine will perform, in mm.

Drawing a job (``station-agent preview``) is :mod:`agent.preview`, a layer above: it also
previews pattern jobs, which are built on this package.
"""

from agent.toolpaths.bounds import BedLimits, ToolpathBoundsError
from agent.toolpaths.compiler import compile_for_target, compile_toolpaths, plan_for_target
from agent.toolpaths.parse_back import parse_back, parse_for_target
from agent.toolpaths.plan import CutSettings, PlannedPath
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
    "target_for",
]
