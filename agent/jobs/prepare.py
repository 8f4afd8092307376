"""Turn an accepted job into the program its station's machine runs.

Toolpaths, pattern and SVG jobs go through the shared compilers for any machine; a job in a
family's own language goes to that family's preparer (:mod:`agent.families`).
"""

from __future__ import annotations

from agent.dialects.program import Program
from agent.errors import ProgramError
from agent.families import find_family
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
    family = find_family(profile.family)
    if family is None or job.kind not in family.own_kinds:
        raise _kind_error(job, profile)
    return family.prepare(job, profile)


def _kind_error(job: JobRequest, profile: Profile) -> ProgramError:
    return ProgramError(
        f"a {job.kind.value} job cannot run on a {profile.family} machine ({profile.name})",
        code="unsupported_kind",
    )


def _compile_toolpaths(job: JobRequest, profile: Profile) -> Program:
    from agent.toolpaths import compile_toolpaths

    return compile_toolpaths(job, profile)
