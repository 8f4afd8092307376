"""The driver and serial settings for a profile's machine family."""

from __future__ import annotations

from agent.drivers.base import DriverListener, MachineDriver
from agent.profiles import Profile
from agent.transport.link import ByteLink


def create_driver(profile: Profile, link: ByteLink, listener: DriverListener) -> MachineDriver:
    if profile.family == "grbl":
        from agent.drivers.grbl import GrblDriver

        return GrblDriver(link, listener, profile)
    if profile.family == "hpgl":
        from agent.drivers.hpgl import HpglDriver

        return HpglDriver(link, listener, profile)
    if profile.family == "marlin":
        from agent.drivers.marlin import MarlinDriver

        return MarlinDriver(link, listener, profile)
    raise NotImplementedError(f"no driver for family {profile.family}")


def serial_handshake(profile: Profile) -> tuple[bool, bool]:
    """(rtscts, xonxoff) the port is opened with."""
    if profile.family == "hpgl":
        from agent.profiles.hpgl import HpglFlowControl

        # XON/XOFF stays off in the kernel: the HP-GL driver handles it, so ESC.K still leaves
        # during an XOFF and the driver knows the plotter asked to wait.
        return (profile.hpgl.flow_control is HpglFlowControl.RTSCTS, False)
    return (False, False)
