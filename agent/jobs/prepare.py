"""Turn an accepted job into the program its station's machine runs (dispatch by family)."""

from __future__ import annotations

from agent.dialects.program import Program
from agent.errors import ProgramError
from agent.profiles import Profile
from agent.schemas.job import JobKind, JobRequest


def prepare_program(job: JobRequest, profile: Profile) -> Program:
    """Validate and translate ``job`` for ``profile``'s machine; raises ProgramError."""
    if job.kind is JobKind.TOOLPATHS:
        return _compile_toolpaths(job, profile)
    if job.kind is JobKind.PATTERN:
        from agent.patterns.compile import compile_pattern

        return compile_pattern(job, profile)
    if job.kind is JobKind.SVG:
        from agent.patterns.svg import compile_svg

        return compile_svg(job, profile)
    if profile.family == "grbl":
        if job.kind is not JobKind.GCODE:
            raise _kind_error(job, profile)
        from agent.dialects.grbl import prepare_grbl_program

        assert job.program is not None
        return prepare_grbl_program(job.program, profile)
    if profile.family == "marlin":
        if job.kind is not JobKind.GCODE:
            raise _kind_error(job, profile)
        from agent.dialects.marlin import prepare_marlin_program

        assert job.program is not None
        return prepare_marlin_program(job.program, profile)
    if profile.family == "hpgl":
        if job.kind is not JobKind.HPGL:
            raise _kind_error(job, profile)
        from agent.dialects.hpgl import prepare_hpgl_program

        assert job.program is not None
        return prepare_hpgl_program(job.program, profile)
    raise _kind_error(job, profile)


def _kind_error(job: JobRequest, profile: Profile) -> ProgramError:
    return ProgramError(
        f"a {job.kind.value} job cannot run on a {profile.family} machine ({profile.name})",
        code="unsupported_kind",
    )


def _compile_toolpaths(job: JobRequest, profile: Profile) -> Program:
    from agent.toolpaths import compile_toolpaths

    return compile_toolpaths(job, profile)
