"""compile_toolpaths: a toolpaths job in, the station machine's program out (pure)."""

from __future__ import annotations

from agent.dialects.program import Program
from agent.errors import ProgramError
from agent.profiles import Profile
from agent.schemas.job import JobKind, JobRequest
from agent.toolpaths.emit_gcode import emit_gcode
from agent.toolpaths.emit_hpgl import emit_hpgl
from agent.toolpaths.plan import PlannedPath, plan_toolpaths
from agent.toolpaths.target import Dialect, MachineTarget, target_for


def compile_toolpaths(job: JobRequest, profile: Profile) -> Program:
    """Compile ``job`` for ``profile``'s machine.

    Raises ProgramError with code ``unsupported_kind`` (the profile takes no toolpaths),
    ``invalid_toolpaths`` (the job cannot run on this machine) or ``out_of_bounds`` (a
    ToolpathBoundsError carrying ``extent_mm``: the job leaves the bed).
    """
    return compile_for_target(job, target_for(profile))


def compile_for_target(job: JobRequest, target: MachineTarget) -> Program:
    lines = emit_lines(plan_for_target(job, target), target)
    return Program(tuple(lines), tuple(range(1, len(lines) + 1)))


def plan_for_target(
    job: JobRequest, target: MachineTarget, *, check_bed: bool = True
) -> list[PlannedPath]:
    if job.kind is not JobKind.TOOLPATHS:
        raise ProgramError(
            f"a {job.kind.value} job is not a toolpaths job", code="unsupported_kind"
        )
    return plan_toolpaths(job, target.settings, target.limits, check_bed=check_bed)


def emit_lines(plan: list[PlannedPath], target: MachineTarget) -> list[str]:
    if target.dialect is Dialect.HPGL:
        return emit_hpgl(plan, target)
    return emit_gcode(plan, target)
