"""A station under test, as the product runs it: an emulated machine on a real pty, the agent in
this event loop on a real Mosquitto, and a planner's MQTT client that records what it says.

``grbl_rig``, ``marlin_rig`` and ``hpgl_rig`` are ``station_rig`` with each family's emulator.
Every wait through the rig (``rig.eventually``, and the planner's own ``wait_*``) watches the
emulator's task and the agent's task: an emulator that crashes fails the test with its own
error at once, not as a timeout, and a failure nobody waited for is raised when the rig closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from agent.config import AgentConfig
from agent.emulators.grbl import GrblEmulator
from agent.emulators.grbl_codes import Realtime
from agent.emulators.hpgl import HpglEmulator
from agent.emulators.marlin import MarlinEmulator
from agent.emulators.pty import PtyEndpoint
from agent.station import Station
from tests.support.broker import Broker
from tests.support.eventually import REPORTED, eventually, raise_if_ended
from tests.support.planner import Planner
from tests.support.station import RunningAgent, agent_config

E = TypeVar("E")


@dataclass
class Rig(Generic[E]):
    """What a test drives and looks at. ``agent`` is the running agent (``rig.agent.agent`` is
    the product's ``Agent``); ``link`` is the pty's path as the agent's config names it."""

    link: Path
    endpoint: PtyEndpoint
    emulator: E
    emulator_task: asyncio.Task[None]
    config: AgentConfig
    planner: Planner
    agent: RunningAgent
    pin_factory: Any = None

    @property
    def station(self) -> Station:
        """The running agent's station (its runner, e-stop latch, device)."""
        assert self.agent.agent is not None, "the agent is not running"
        return self.agent.agent.station

    def watched(self) -> list[asyncio.Task[Any] | None]:
        """The tasks the test depends on right now (the agent's changes when it restarts)."""
        return [self.emulator_task, self.agent.task]

    async def eventually(self, predicate: Callable[[], Any], what: str,
                         timeout: float = 30.0) -> Any:
        """Until ``predicate`` holds (machine state, the station's), watching the emulator and
        the agent; a timeout quotes the planner's recent events."""
        return await eventually(predicate, what=what, timeout=timeout, watch=self.watched(),
                                wake=None, context=self.planner.recent_events)

    async def start_agent(self, config: AgentConfig | None = None) -> RunningAgent:
        """A new agent on the same pty and broker (after ``stop_agent`` or a crash)."""
        self.agent = RunningAgent(config or self.config, pin_factory=self.pin_factory)
        await self.agent.start()
        await self.agent.wait_device_online()
        return self.agent

    async def stop_agent(self) -> None:
        await self.agent.shutdown()


@contextlib.asynccontextmanager
async def station_rig(
    tmp_path: Path,
    broker: Broker,
    make_emulator: Callable[[PtyEndpoint], E],
    serve: Callable[[E], Callable[[], Coroutine[Any, Any, None]]],
    *,
    profile: str = "grbl-1.1",
    station: str = "cutter-01",
    baud: int | None = 115_200,
    latency_s: float = 0.0,
    start_agent: bool = True,
    pin_factory: Any = None,
    **config: Any,
) -> AsyncIterator[Rig[E]]:
    """``serve(emulator)`` is the emulator's long-running coroutine function; ``config`` goes
    to ``agent_config`` as overrides. With ``start_agent=False`` the test starts it itself
    (``rig.start_agent()``), e.g. to publish before the station is there."""
    os.makedirs(tmp_path, exist_ok=True)
    link = tmp_path / f"tty-{station}"
    cfg = agent_config(tmp_path, broker, link, profile=profile, station=station, **config)
    async with contextlib.AsyncExitStack() as stack:
        endpoint = await stack.enter_async_context(PtyEndpoint(link, baud=baud,
                                                               latency_s=latency_s))
        emulator = make_emulator(endpoint)
        task = asyncio.create_task(serve(emulator)(), name=f"emulator-{station}")
        stack.push_async_callback(_stop, task)
        planner = await stack.enter_async_context(Planner(broker.host, broker.port,
                                                          station=station))
        rig = Rig(link, endpoint, emulator, task, cfg, planner, RunningAgent(cfg), pin_factory)
        planner.watch = rig.watched
        stack.push_async_callback(rig.stop_agent)
        if start_agent:
            await rig.start_agent()
        yield rig
        # A crash nobody waited for is still this test's failure.
        failed = task.done() and not task.cancelled() and task.exception() is not None
        if failed and task not in REPORTED:
            raise_if_ended([task], "the end of the test")


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def grbl_rig(tmp_path: Path, broker: Broker, *, baud: int | None = 115_200,
             latency_s: float = 0.0, profile: str = "grbl-1.1", station: str = "cutter-01",
             start_agent: bool = True, config: dict[str, Any] | None = None,
             pin_factory: Any = None,
             **emulator_options: Any) -> contextlib.AbstractAsyncContextManager[
                 Rig[GrblEmulator]]:
    """A GRBL cutter: ``emulator_options`` go to ``GrblEmulator`` (motion, unsupported, ...);
    ``pin_factory``: gpiozero's MockFactory for a station with safety inputs."""
    return station_rig(tmp_path, broker, lambda end: GrblEmulator(end, **emulator_options),
                       lambda emulator: emulator.run, profile=profile, station=station,
                       baud=baud, latency_s=latency_s, start_agent=start_agent,
                       pin_factory=pin_factory, **(config or {}))


def marlin_rig(tmp_path: Path, broker: Broker, *, baud: int | None = None,
               latency_s: float = 0.001, profile: str = "marlin-2",
               station: str = "printer-01", start_agent: bool = True,
               config: dict[str, Any] | None = None,
               **emulator_options: Any) -> contextlib.AbstractAsyncContextManager[
                   Rig[MarlinEmulator]]:
    return station_rig(tmp_path, broker, lambda end: MarlinEmulator(end, **emulator_options),
                       lambda emulator: emulator.serve, profile=profile, station=station,
                       baud=baud, latency_s=latency_s, start_agent=start_agent,
                       **(config or {}))


def hpgl_rig(tmp_path: Path, broker: Broker, *, baud: int | None = None,
             latency_s: float = 0.002, profile: str = "hpgl-7475a",
             station: str = "plotter-01", start_agent: bool = True,
             config: dict[str, Any] | None = None,
             **emulator_options: Any) -> contextlib.AbstractAsyncContextManager[
                 Rig[HpglEmulator]]:
    return station_rig(tmp_path, broker, lambda end: HpglEmulator(end, **emulator_options),
                       lambda emulator: emulator.serve, profile=profile, station=station,
                       baud=baud, latency_s=latency_s, start_agent=start_agent,
                       **(config or {}))


def status_polls(emulator: GrblEmulator) -> int:
    """How many ``?`` status requests the GRBL emulator has answered so far."""
    return sum(1 for kind, value in emulator.log
               if kind == "realtime" and value == Realtime.STATUS_REPORT.value)


async def after_status_polls(rig: Rig[GrblEmulator], count: int = 3) -> None:
    """Until the agent has asked the machine for its state ``count`` more times: whatever it
    was going to do on what it saw, it has done. The causal stand-in for "wait a moment and
    check that nothing happened"."""
    target = status_polls(rig.emulator) + count
    await rig.eventually(lambda: status_polls(rig.emulator) >= target,
                         f"{count} more status polls")
