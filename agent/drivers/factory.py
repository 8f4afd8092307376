"""The driver and serial settings for a profile's machine family."""

from __future__ import annotations

from agent.drivers.base import DriverListener, MachineDriver
from agent.profiles import Profile
from agent.transport.link import ByteLink


def create_driver(profile: Profile, link: ByteLink, listener: DriverListener) -> MachineDriver:
    if profile.family == "grbl":
        from agent.drivers.grbl import GrblDriver

        return GrblDriver(link, listener, profile)
    raise NotImplementedError(f"no driver for family {profile.family}")


def serial_handshake(profile: Profile) -> tuple[bool, bool]:
    """(rtscts, xonxoff) the port is opened with."""
    return (False, False)
