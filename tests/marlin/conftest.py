"""Marlin test helpers: a listener that records, a garment program, and a station on a pty."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.aio import wait_within
from agent.dialects.marlin import prepare_marlin_program
from agent.drivers.base import DriverListener, Telemetry
from agent.drivers.marlin import MarlinDriver
from agent.emulators.marlin import MarlinEmulator
from agent.emulators.pty import PtyEndpoint
from agent.garments import short_segment_outline
from agent.profiles import load_profile
from agent.profiles.marlin import MarlinProfile
from agent.transport.serial_port import SerialLink

# Lines the agent itself adds around a job (numbering, probes, the fence and the barrier).
HOST_LINES = frozenset({"M110 N0", "M105", "M400"})


class RecordingListener(DriverListener):
    def __init__(self) -> None:
        self.telemetry: list[Telemetry] = []
        self.states: list[str] = []
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def on_telemetry(self, telemetry: Telemetry) -> None:
        self.telemetry.append(telemetry)

    def on_device_state(self, state: str, detail: dict[str, Any]) -> None:
        self.states.append(state)

    def on_warning(self, message: str, detail: dict[str, Any]) -> None:
        self.warnings.append((message, detail))


class Progress:
    """An on_progress callback that a test can wait on."""

    def __init__(self) -> None:
        self.values: list[int] = []
        self._threshold: int | None = None
        self._reached = asyncio.Event()

    def __call__(self, acknowledged: int) -> None:
        self.values.append(acknowledged)
        if self._threshold is not None and acknowledged >= self._threshold:
            self._reached.set()

    async def reached(self, count: int, within_s: float = 30.0) -> None:
        self._threshold = count
        if self.values and self.values[-1] >= count:
            return
        await wait_within(self._reached.wait(), within_s)


def marlin_profile(**marlin: Any) -> MarlinProfile:
    base = load_profile("marlin-2")
    assert isinstance(base, MarlinProfile)
    settings = base.marlin.model_copy(update=marlin)
    return base.model_copy(update={"marlin": settings, "hello_timeout_s": 5.0})


def sleeve_program(n_lines: int) -> tuple[str, ...]:
    """A sleeve cap traced in ~0.5 mm G1 segments, as Marlin lines (one command per line)."""
    text = short_segment_outline(n_lines).replace("G21G90G94", "G21\nG90", 1)
    return prepare_marlin_program(text, marlin_profile()).lines


def executed_program(executed: list[str]) -> list[str]:
    """What the emulator ran, without the agent's own protocol lines."""
    return [line for line in executed if line not in HOST_LINES and not line.startswith(
        ("M115", "M155", "M113"))]


@dataclass
class Station:
    endpoint: PtyEndpoint
    emulator: MarlinEmulator
    link: SerialLink
    driver: MarlinDriver
    listener: RecordingListener
    run_task: asyncio.Task[None]
    progress: list[int] = field(default_factory=list)


@contextlib.asynccontextmanager
async def marlin_station(
    tmp_path: Path,
    *,
    profile: MarlinProfile | None = None,
    latency_s: float = 0.001,
    **emulator_options: Any,
) -> AsyncIterator[Station]:
    profile = profile or marlin_profile(boot_wait_s=0.2)
    async with PtyEndpoint(tmp_path / "marlin", baud=None, latency_s=latency_s) as endpoint:
        emulator = MarlinEmulator(endpoint, **emulator_options)
        emulator.start()
        link = await SerialLink.open(endpoint.path, profile.baud)
        listener = RecordingListener()
        driver = MarlinDriver(link, listener, profile)
        run_task: asyncio.Task[None] | None = None
        try:
            await driver.open()
            run_task = asyncio.create_task(driver.run(), name="marlin-driver")
            yield Station(endpoint, emulator, link, driver, listener, run_task)
        finally:
            if run_task is not None:
                run_task.cancel()
                with contextlib.suppress(BaseException):
                    await run_task
            await link.close()
            await emulator.stop()
