"""A GRBL command waiting for its ok: a reset fails it, a cancel of the caller stays a cancel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from agent.drivers.base import QuietListener
from agent.drivers.grbl import GrblDriver
from agent.emulators.grbl import GrblEmulator
from agent.emulators.pty import PtyEndpoint
from agent.errors import DeviceError
from agent.profiles import load_profile
from agent.profiles.grbl import GrblProfile
from agent.transport.serial_port import SerialLink
from tests.support.eventually import eventually
from tests.support.station import background

# A dwell at the start of a label run: GRBL answers G4 only once it has waited it out.
DWELL = "G4P4"


@contextlib.asynccontextmanager
async def _driver() -> AsyncIterator[tuple[GrblDriver, GrblEmulator]]:
    profile = load_profile("grbl-1.1")
    assert isinstance(profile, GrblProfile)
    async with PtyEndpoint(baud=115_200) as endpoint:
        emulator = GrblEmulator(endpoint, motion=True)
        async with background(emulator.run, "grbl"):
            port = await SerialLink.open(str(endpoint.path), 115_200)
            driver = GrblDriver(port, QuietListener(), profile)
            try:
                await driver.open()
                run = asyncio.create_task(driver.run(), name="grbl-driver-run")
                try:
                    yield driver, emulator
                finally:
                    run.cancel()
                    await asyncio.gather(run, return_exceptions=True)
            finally:
                await port.close()


async def _pending(driver: GrblDriver, emulator: GrblEmulator) -> asyncio.Task[list[str]]:
    task = asyncio.create_task(driver.command(DWELL))
    # The machine has the dwell and is waiting it out: the command is pending there.
    await eventually(lambda: ("line", DWELL) in emulator.log or task.done(),
                     what="the dwell to reach the machine", timeout=10)
    assert not task.done(), "the dwell was answered before it was waited out"
    return task


async def test_cancelling_the_caller_of_a_pending_command_raises_cancelled() -> None:
    async with _driver() as (driver, emulator):
        task = await _pending(driver, emulator)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The driver still answers afterwards.
        await driver.reset()
        assert (await driver.command("$G", timeout=5))[0].startswith("GC:")


async def test_an_estop_during_a_pending_command_fails_it_as_a_device_error() -> None:
    async with _driver() as (driver, emulator):
        task = await _pending(driver, emulator)
        await driver.estop()
        with pytest.raises(DeviceError, match="reset before answering"):
            await task
