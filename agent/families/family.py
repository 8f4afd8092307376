"""What the agent needs to know about one machine family, in one frozen record.

A family is the firmware a profile names in its ``family`` key (GRBL, Marlin, HP-GL). Every part
of the agent that differs by family reads it from here instead of switching on the name: the
job kinds a station takes, how a job becomes the machine's program, the driver, how the serial
port is opened, the emulator the CLI and tests run, the profile model and the doctor's hello.

Each family's record lives in its own module (``agent/families/grbl.py``...) and is listed once
in :data:`agent.families.FAMILIES`. The callables import their dialect and driver modules when
first called, so importing the registry stays cheap and points down the layers only at use.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.schemas.job import JobKind

if TYPE_CHECKING:
    from agent.dialects.program import Program
    from agent.drivers.base import DriverListener, MachineDriver
    from agent.estimate import Estimate
    from agent.profiles import Profile
    from agent.profiles.base import ProfileBase
    from agent.schemas.job import JobRequest
    from agent.transport.link import ByteLink

# Kinds compiled for any family by the shared compilers (toolpaths, pattern and SVG pieces),
# given a [toolpath] section in the profile; listed after a family's own language.
COMPILED_KINDS: tuple[JobKind, ...] = (JobKind.TOOLPATHS, JobKind.PATTERN, JobKind.SVG)

Preparer = Callable[["JobRequest", "Profile"], "Program"]
"""(job in the family's own language, profile) -> the checked program; raises ProgramError."""

DriverFactory = Callable[["Profile", "ByteLink", "DriverListener"], "MachineDriver"]

SerialHandshake = Callable[["Profile"], tuple[bool, bool]]
"""profile -> (rtscts, xonxoff) the serial port is opened with."""

Estimator = Callable[[Sequence[str], Mapping[str, Any]], "Estimate | None"]
"""(program lines, the device's capabilities from its handshake) -> the machine time, or None
where the machine has not told what the estimate needs."""

SerialProbe = Callable[[str, int, "Profile", float], Coroutine[Any, Any, str]]
"""(port path, baud, profile, timeout s) -> what the device said; raises DeviceError."""


def no_handshake(profile: Profile) -> tuple[bool, bool]:
    """Neither RTS/CTS nor XON/XOFF: the driver's own flow control (counting, oks) is enough."""
    del profile
    return (False, False)


@dataclass(frozen=True)
class Family:
    # The profile's ``family`` value, and the name the CLI's ``emulate`` command takes.
    name: str
    # What the station's info lists as ``job_kinds``, in that order; the family's own language
    # first, then the COMPILED_KINDS it takes through the shared compilers.
    job_kinds: tuple[JobKind, ...]
    # The station's info ``dialect``: the language and firmware version the driver speaks.
    dialect: str
    # Checks and translates a job of one of the family's own kinds (not COMPILED_KINDS).
    prepare: Preparer
    create_driver: DriverFactory
    # The profile model class (one member of agent.profiles.Profile's union).
    profile_model: type[ProfileBase]
    # Importable module with ``add_cli_arguments(parser)`` and ``async run_cli(args)``.
    emulator: str
    serial_handshake: SerialHandshake = no_handshake
    # The doctor's serial hello when the driver's own open() is not the right one; None: open().
    serial_probe: SerialProbe | None = None
    # The job's machine time from a model of the firmware's motion planner (None: no model).
    estimate: Estimator | None = None

    @property
    def own_kinds(self) -> tuple[JobKind, ...]:
        """The job kinds in the family's own language, which :attr:`prepare` takes."""
        return tuple(k for k in self.job_kinds if k not in COMPILED_KINDS)
