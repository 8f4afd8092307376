"""The agent as a station runs it: ``station-agent run`` (``python -m agent.cli run``) in its own
process with a config file, a Mosquitto the bench started, and the job published over MQTT by
agent.submit as a planner would. The CPU figure is the whole agent process's (MQTT, progress
events, telemetry, storage and the stream), from just before the job is published to the
``succeeded`` event reaching the bench.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent.aio import wait_within
from agent.link.mqtt_client import ConnectOptions, IncomingMessage, MqttConnection
from agent.submit import submit
from peers.procs import CpuTimes, cpu_times

STATION = "cutter-01"
PREFIX = "mf"


def write_config(path: Path, broker_port: int, serial_port: Path, state: Path) -> None:
    path.write_text("\n".join([
        f'station_id = "{STATION}"', 'profile = "grbl-1.1"',
        "[mqtt]", 'host = "127.0.0.1"', f"port = {broker_port}", f'topic_prefix = "{PREFIX}"',
        "[serial]", f'port = "{serial_port}"', "baud = 115200",
        "[storage]", f'dir = "{state}"',
    ]) + "\n")


async def _wait_idle(broker_port: int, timeout: float) -> None:
    """Until the station's retained status says ``idle``: on the broker, machine online."""
    idle = asyncio.Event()
    seen: list[IncomingMessage] = []

    def on_message(msg: IncomingMessage) -> None:
        seen.append(msg)
        if json.loads(msg.payload).get("state") == "idle":
            idle.set()

    options = ConnectOptions(host="127.0.0.1", port=broker_port, client_id="bench-peers-watch",
                             clean_start=True)
    async with MqttConnection(options, on_message) as conn:
        await conn.subscribe([(f"{PREFIX}/{STATION}/status", 0)])
        await wait_within(idle.wait(), timeout)


async def _job(broker_port: int, pid: int, job: dict[str, Any]) -> tuple[CpuTimes, int]:
    await _wait_idle(broker_port, 60)
    await asyncio.sleep(0.5)  # start-up queries answered, telemetry in its steady rhythm
    before = cpu_times(pid)
    code = await submit(job, station=STATION, host="127.0.0.1", port=broker_port, prefix=PREFIX,
                        watch=True, timeout_s=600, out=io.StringIO())
    return cpu_times(pid) - before, code


def run(host_link: Path, lines: list[str], work: Path, name: str,
        broker_port: int, root: Path) -> tuple[CpuTimes, dict[str, Any]]:
    state = work / f"{name}-state"
    state.mkdir(exist_ok=True)
    config = work / f"{name}-agent.toml"
    write_config(config, broker_port, host_link, state)
    job = {"job_id": f"peers-{name}", "kind": "gcode", "program": "\n".join(lines) + "\n",
           "meta": {"order": "SO-1042", "garment": "T-shirt front, men's M"}}
    with (work / f"{name}-agent.log").open("wb") as log:
        agent = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config",
                                  str(config)], stdout=log, stderr=log, cwd=root,
                                 env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        spent, code = asyncio.run(_job(broker_port, agent.pid, job))
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
    if code != 0:
        raise RuntimeError(f"the agent's job did not succeed (submit exit {code})")
    return spent, {"submit_exit": code}
