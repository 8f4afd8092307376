"""Marlin 2 printers and cutters: numbered, checksummed G-code with resends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.families.family import COMPILED_KINDS, Family
from agent.profiles.marlin import MarlinProfile
from agent.schemas.job import JobKind

if TYPE_CHECKING:
    from agent.dialects.program import Program
    from agent.drivers.base import DriverListener, MachineDriver
    from agent.profiles import Profile
    from agent.schemas.job import JobRequest
    from agent.transport.link import ByteLink


def _prepare(job: JobRequest, profile: Profile) -> Program:
    from agent.dialects.marlin import prepare_marlin_program

    assert isinstance(profile, MarlinProfile)
    assert job.program is not None
    return prepare_marlin_program(job.program, profile)


def _create_driver(profile: Profile, link: ByteLink, listener: DriverListener) -> MachineDriver:
    from agent.drivers.marlin import MarlinDriver

    assert isinstance(profile, MarlinProfile)
    return MarlinDriver(link, listener, profile)


MARLIN = Family(
    name="marlin",
    job_kinds=(JobKind.GCODE, *COMPILED_KINDS),
    dialect="marlin",
    prepare=_prepare,
    create_driver=_create_driver,
    profile_model=MarlinProfile,
    emulator="agent.emulators.marlin",
)
