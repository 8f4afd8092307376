"""GRBL 1.1 cutters and lasers: G-code, character counting, ``?`` status polling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agent.families.family import COMPILED_KINDS, Family
from agent.profiles.grbl import GrblProfile
from agent.schemas.job import JobKind

if TYPE_CHECKING:
    from agent.dialects.program import Program
    from agent.drivers.base import DriverListener, MachineDriver
    from agent.estimate import Estimate
    from agent.profiles import Profile
    from agent.schemas.job import JobRequest
    from agent.transport.link import ByteLink


def _prepare(job: JobRequest, profile: Profile) -> Program:
    from agent.dialects.grbl import prepare_grbl_program

    assert isinstance(profile, GrblProfile)
    assert job.program is not None
    return prepare_grbl_program(job.program, profile)


def _create_driver(profile: Profile, link: ByteLink, listener: DriverListener) -> MachineDriver:
    from agent.drivers.grbl import GrblDriver

    assert isinstance(profile, GrblProfile)
    return GrblDriver(link, listener, profile)


def _estimate(lines: Sequence[str], capabilities: Mapping[str, Any]) -> Estimate | None:
    from agent.estimate import estimate_grbl

    return estimate_grbl(lines, capabilities)


GRBL = Family(
    name="grbl",
    job_kinds=(JobKind.GCODE, *COMPILED_KINDS),
    dialect="grbl-1.1",
    prepare=_prepare,
    create_driver=_create_driver,
    profile_model=GrblProfile,
    emulator="agent.emulators.grbl",
    estimate=_estimate,
)
