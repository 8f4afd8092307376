"""The machine families the agent drives, registered in one place.

Everything that differs by family is read from its :class:`Family` record here; nothing else in
the agent switches on ``profile.family``. Adding a family: see docs/adding-a-family.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.families.family import COMPILED_KINDS, Family, SerialProbe
from agent.families.grbl import GRBL
from agent.families.hpgl import HPGL
from agent.families.marlin import MARLIN

if TYPE_CHECKING:
    from agent.drivers.base import DriverListener, MachineDriver
    from agent.profiles import Profile
    from agent.transport.link import ByteLink

__all__ = [
    "COMPILED_KINDS", "FAMILIES", "Family", "SerialProbe", "create_driver", "find_family",
    "serial_handshake",
]

FAMILIES: tuple[Family, ...] = (GRBL, MARLIN, HPGL)
_BY_NAME = {family.name: family for family in FAMILIES}


def find_family(name: str) -> Family | None:
    """The registered family called ``name`` (a profile's ``family``), or None."""
    return _BY_NAME.get(name)


def create_driver(profile: Profile, link: ByteLink, listener: DriverListener) -> MachineDriver:
    """The profile's family driver over ``link``; NotImplementedError for an unknown family."""
    family = find_family(profile.family)
    if family is None:
        raise NotImplementedError(f"no driver for family {profile.family}")
    return family.create_driver(profile, link, listener)


def serial_handshake(profile: Profile) -> tuple[bool, bool]:
    """(rtscts, xonxoff) the port is opened with."""
    family = find_family(profile.family)
    return (False, False) if family is None else family.serial_handshake(profile)
