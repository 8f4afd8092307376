"""HP-GL plotters and vinyl cutters: ``ESC.B`` buffer queries, or XON/XOFF, or RTS/CTS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.families.family import COMPILED_KINDS, Family
from agent.profiles.hpgl import HpglFlowControl, HpglProfile
from agent.schemas.job import JobKind

if TYPE_CHECKING:
    from agent.dialects.program import Program
    from agent.drivers.base import DriverListener, MachineDriver
    from agent.profiles import Profile
    from agent.schemas.job import JobRequest
    from agent.transport.link import ByteLink


def _prepare(job: JobRequest, profile: Profile) -> Program:
    from agent.dialects.hpgl import prepare_hpgl_program

    assert isinstance(profile, HpglProfile)
    assert job.program is not None
    return prepare_hpgl_program(job.program, profile)


def _create_driver(profile: Profile, link: ByteLink, listener: DriverListener) -> MachineDriver:
    from agent.drivers.hpgl import HpglDriver

    assert isinstance(profile, HpglProfile)
    return HpglDriver(link, listener, profile)


def _serial_handshake(profile: Profile) -> tuple[bool, bool]:
    assert isinstance(profile, HpglProfile)
    # XON/XOFF stays off in the kernel: the HP-GL driver handles it, so ESC.K still leaves
    # during an XOFF and the driver knows the plotter asked to wait.
    return (profile.hpgl.flow_control is HpglFlowControl.RTSCTS, False)


HPGL = Family(
    name="hpgl",
    job_kinds=(JobKind.HPGL, *COMPILED_KINDS),
    dialect="hpgl",
    prepare=_prepare,
    create_driver=_create_driver,
    profile_model=HpglProfile,
    emulator="agent.emulators.hpgl",
    serial_handshake=_serial_handshake,
)
