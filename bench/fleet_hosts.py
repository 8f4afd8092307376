"""Worker processes for bench/fleet.py: one event loop hosting many agents, or many emulators.

Two hundred `station-agent run` processes would each import pydantic, paho and the rest; on two
cores that start-up alone takes minutes. A host process runs several ``run_agent()`` (or several
GRBL emulators) side by side in one loop instead, so an agent costs what it adds to the process.
Agents and emulators live in separate processes so the agents' CPU figure is the agents' alone.

Usage (driven by bench/fleet.py over stdin/stdout, one JSON object a line):
``python bench/fleet_hosts.py agents|emulators SPEC.json``. The host prints ``{"ready": ...}``
once everything in SPEC is up, then waits for a line on stdin, shuts down, and prints
``{"done": ...}`` with its final figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from agent.aio import wait_within
from agent.app import Agent, run_agent
from agent.config import parse_config
from agent.emulators.grbl import GrblEmulator
from agent.emulators.pty import PtyEndpoint

BAUD = 115_200
LATENCY_S = 0.002  # a USB serial adapter's latency timer
UP_TIMEOUT_S = 120.0


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _say(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def _wait_stdin() -> None:
    """Until the bench writes a line (or closes the pipe). A reader on the loop, not a thread:
    the agents need the default executor for their job validation."""
    loop = asyncio.get_running_loop()
    said: asyncio.Future[None] = loop.create_future()
    fd = sys.stdin.fileno()

    def readable() -> None:
        if not said.done():
            said.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await said
    finally:
        loop.remove_reader(fd)


class _HostedAgent:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = parse_config(config)
        self.stop = asyncio.Event()
        self.agent: Agent | None = None
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def _on_ready(self, agent: Agent) -> None:
        self.agent = agent
        self.ready.set()

    def start(self) -> None:
        self.task = asyncio.create_task(
            run_agent(self.config, stop=self.stop, on_ready=self._on_ready),
            name=f"agent-{self.config.station_id}")

    async def up(self) -> None:
        """On the broker and talking to its machine."""
        assert self.task is not None
        ready = asyncio.ensure_future(self.ready.wait())
        done, _ = await asyncio.wait([self.task, ready], return_when=asyncio.FIRST_COMPLETED)
        if self.task in done:
            ready.cancel()
            self.task.result()
            raise RuntimeError(f"{self.config.station_id} stopped during start-up")
        assert self.agent is not None
        await self.agent.link.connected.wait()
        await self.agent.station.device.online.wait()

    async def shutdown(self) -> None:
        if self.task is None:
            return
        self.stop.set()
        try:
            await wait_within(asyncio.shield(self.task), 20)
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def host_agents(spec: dict[str, Any]) -> None:
    agents = [_HostedAgent(c) for c in spec["configs"]]
    rss_base = _status_kib("VmRSS")
    t0 = time.monotonic()
    # The first one alone: what one agent adds to a process that has imported everything.
    agents[0].start()
    await wait_within(agents[0].up(), UP_TIMEOUT_S)
    await asyncio.sleep(0.5)
    rss_one = _status_kib("VmRSS")
    for a in agents[1:]:
        a.start()
    await wait_within(asyncio.gather(*(a.up() for a in agents[1:])), UP_TIMEOUT_S)
    await asyncio.sleep(0.5)
    _say({"ready": True, "agents": len(agents), "start_s": round(time.monotonic() - t0, 2),
          "rss_base_kib": rss_base, "rss_one_kib": rss_one, "rss_all_kib": _status_kib("VmRSS")})
    await _wait_stdin()
    rss_end = _status_kib("VmRSS")
    hwm = _status_kib("VmHWM")
    await asyncio.gather(*(a.shutdown() for a in agents))
    _say({"done": True, "rss_end_kib": rss_end, "hwm_kib": hwm})


async def host_emulators(spec: dict[str, Any]) -> None:
    async with contextlib.AsyncExitStack() as stack:
        emulators: dict[str, GrblEmulator] = {}
        tasks = []
        for station, link in spec["links"].items():
            endpoint = await stack.enter_async_context(
                PtyEndpoint(Path(link), baud=BAUD, latency_s=LATENCY_S))
            emulator = GrblEmulator(endpoint, motion=bool(spec.get("motion", True)))
            emulators[station] = emulator
            tasks.append(asyncio.create_task(emulator.run(), name=f"grbl-{station}"))
        _say({"ready": True, "emulators": len(emulators), "rss_kib": _status_kib("VmRSS")})
        await _wait_stdin()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # Executed G-code lines per machine: the bench compares them with the jobs each ran.
        _say({"done": True, "executed": {s: len(e.executed) for s, e in emulators.items()},
              "overflow_bytes": sum(e.overflow_bytes for e in emulators.values()),
              "alarms": sum(len(e.alarms_sent) for e in emulators.values()),
              "errors": sum(len(e.errors_sent) for e in emulators.values())})


def main() -> None:
    mode, spec_path = sys.argv[1], Path(sys.argv[2])
    spec = json.loads(spec_path.read_text())
    hosts = {"agents": host_agents, "emulators": host_emulators}
    asyncio.run(hosts[mode](spec))


if __name__ == "__main__":
    main()
