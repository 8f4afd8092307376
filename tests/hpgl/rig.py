"""A plotter on a real pty: emulator, pyserial SerialLink, and the HP-GL driver with its task."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.drivers.base import DeviceInfo, DriverListener, Telemetry
from agent.drivers.hpgl import HpglDriver
from agent.emulators.hpgl import HpglEmulator
from agent.emulators.pty import PtyEndpoint
from agent.families import create_driver, serial_handshake
from agent.profiles import load_profile, parse_profile
from agent.profiles.hpgl import HpglProfile
from agent.transport.serial_port import SerialLink
from tests.support.eventually import eventually


@dataclass
class RecordingListener(DriverListener):
    telemetry: list[Telemetry] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    warnings: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def on_telemetry(self, telemetry: Telemetry) -> None:
        self.telemetry.append(telemetry)

    def on_device_state(self, state: str, detail: dict[str, Any]) -> None:
        self.states.append(state)

    def on_warning(self, message: str, detail: dict[str, Any]) -> None:
        self.warnings.append((message, detail))


def hpgl_profile(name: str = "hpgl-7475a", *, baud: int | None = None,
                 **hpgl: object) -> HpglProfile:
    data = load_profile(name).model_dump(mode="json")
    data["hpgl"].update(hpgl)
    if baud is not None:
        data["baud"] = baud
    profile = parse_profile(data)
    assert isinstance(profile, HpglProfile)
    return profile


@dataclass
class Rig:
    endpoint: PtyEndpoint
    emulator: HpglEmulator
    link: SerialLink
    driver: HpglDriver
    listener: RecordingListener
    run_task: asyncio.Task[None]
    info: DeviceInfo


async def wait_until_idle(emulator: HpglEmulator, received: int, limit_s: float = 60.0) -> None:
    """Until ``received`` bytes have arrived and the plotter has run them all."""
    await eventually(lambda: emulator.starved and emulator.bytes_received >= received,
                     what=f"the plotter idle after {received} bytes", timeout=limit_s,
                     context=lambda: f"{emulator.bytes_received} bytes received")


@contextlib.asynccontextmanager
async def plotter_rig(
    profile: HpglProfile,
    *,
    wire_baud: int | None = None,
    latency_s: float = 0.002,
    buffer_bytes: int = 1024,
    pen_speed_mm_s: float = 2000.0,
    record_path: Path | None = None,
    stale_io_error: int = 0,
    identity: str = "7475A",
    constant_os: bool = False,
) -> AsyncIterator[Rig]:
    """``wire_baud``: the pty's simulated wire (None: as fast as the pty goes)."""
    async with PtyEndpoint(baud=wire_baud, latency_s=latency_s) as endpoint:
        emulator = HpglEmulator(endpoint, buffer_bytes=buffer_bytes,
                                pen_speed_mm_s=pen_speed_mm_s, record_path=record_path,
                                identity=identity, constant_os=constant_os)
        emulator.io_error = stale_io_error  # as left by an earlier session
        emulator.start()
        rtscts, xonxoff = serial_handshake(profile)
        link = await SerialLink.open(endpoint.path, profile.baud, rtscts=rtscts, xonxoff=xonxoff)
        listener = RecordingListener()
        driver = create_driver(profile, link, listener)
        assert isinstance(driver, HpglDriver)
        run_task: asyncio.Task[None] | None = None
        try:
            info = await driver.open()
            run_task = asyncio.create_task(driver.run(), name="hpgl-driver-run")
            yield Rig(endpoint, emulator, link, driver, listener, run_task, info)
        finally:
            if run_task is not None:
                run_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run_task
            await link.close()
            await emulator.stop()
