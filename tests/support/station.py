"""An agent running in the test's event loop against an emulator on a real pty."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from agent.aio import wait_within
from agent.app import Agent, run_agent
from agent.config import AgentConfig, parse_config
from tests.support.broker import Broker
from tests.support.eventually import eventually_sync


def agent_config(tmp: Path, broker: Broker, serial_path: Path, *, profile: str = "grbl-1.1",
                 station: str = "cutter-01", **overrides: Any) -> AgentConfig:
    data: dict[str, Any] = {
        "station_id": station,
        "profile": profile,
        "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": "mf",
                 "reconnect_min_s": 0.05, "reconnect_max_s": 0.5, "keepalive_s": 5},
        "serial": {"port": str(serial_path), "reopen_interval_s": 0.2},
        "storage": {"dir": str(tmp / f"state-{station}")},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_config(data)


class RunningAgent:
    def __init__(self, config: AgentConfig, *, pin_factory: Any = None) -> None:
        self.config = config
        self.pin_factory = pin_factory  # gpiozero's; tests pass a MockFactory
        self.stop = asyncio.Event()
        self.agent: Agent | None = None
        self._ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def _on_ready(self, agent: Agent) -> None:
        self.agent = agent
        self._ready.set()

    async def start(self) -> RunningAgent:
        self.task = asyncio.create_task(run_agent(self.config, stop=self.stop,
                                                  on_ready=self._on_ready,
                                                  pin_factory=self.pin_factory),
                                        name="agent-under-test")
        done, _ = await asyncio.wait([self.task, asyncio.ensure_future(self._ready.wait())],
                                     return_when=asyncio.FIRST_COMPLETED)
        if self.task in done:
            self.task.result()
        return self

    async def wait_device_online(self, timeout: float = 20.0) -> None:
        assert self.agent is not None
        await wait_within(self.agent.station.device.online.wait(), timeout)

    async def wait_broker(self, timeout: float = 20.0) -> None:
        assert self.agent is not None
        await wait_within(self.agent.link.connected.wait(), timeout)

    async def shutdown(self) -> None:
        if self.task is None:
            return
        self.stop.set()
        try:
            await wait_within(asyncio.shield(self.task), 15)
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.task = None


@contextlib.asynccontextmanager
async def running_agent(config: AgentConfig) -> AsyncIterator[RunningAgent]:
    agent = RunningAgent(config)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.shutdown()


@contextlib.asynccontextmanager
async def background(coro_factory: Callable[[], Any],
                     name: str) -> AsyncIterator[asyncio.Task[Any]]:
    """Run a long-lived coroutine (an emulator) for the duration of the block."""
    task = asyncio.create_task(coro_factory(), name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def write_config_file(path: Path, config: AgentConfig) -> Path:
    """The config as TOML, for an agent started as a separate process."""
    pools = ", ".join(f'"{p}"' for p in config.pools)
    lines = [f'station_id = "{config.station_id}"', f'profile = "{config.profile}"',
             f"pools = [{pools}]", "[mqtt]",
             f'host = "{config.mqtt.host}"', f"port = {config.mqtt.port}",
             f'topic_prefix = "{config.mqtt.topic_prefix}"',
             f"reconnect_min_s = {config.mqtt.reconnect_min_s}",
             f"reconnect_max_s = {config.mqtt.reconnect_max_s}",
             f"keepalive_s = {config.mqtt.keepalive_s}",
             "[serial]", f'port = "{config.serial.port}"',
             f"reopen_interval_s = {config.serial.reopen_interval_s}",
             "[storage]", f'dir = "{config.storage.dir}"',
             f"outbox_max_bytes = {config.storage.outbox_max_bytes}",
             "[limits]", f"max_queued_jobs = {config.limits.max_queued_jobs}"]
    path.write_text("\n".join(lines) + "\n")
    return path


class AgentProcess:
    """`station-agent run` as a real child process (for kill -9 tests)."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(self.config_path)],
            stdout=log, stderr=log, env=env,
        )
        log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def terminate(self) -> int:
        if self.proc is None:
            return 0
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        return rc

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0,
               what: str = "condition") -> None:
    eventually_sync(predicate, what=what, timeout=timeout)
