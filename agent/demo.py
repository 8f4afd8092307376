"""`station-agent demo`: a private broker, an emulated GRBL knife cutter, the agent, and a real
job (a T-shirt's front, back and sleeves) followed live to the end. Cleans up after itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.app import Agent, run_agent
from agent.config import AgentConfig, parse_config
from agent.emulators.grbl import GrblEmulator
from agent.emulators.pty import PtyEndpoint
from agent.garments import knife_gcode, tshirt_pieces
from agent.submit import submit


def find_mosquitto() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/bin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("mosquitto is not installed: run `make demo` (it installs it) or "
                     "`sudo apt-get install mosquitto`")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(workdir: Path, port: int, extra: str = "") -> subprocess.Popen[bytes]:
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"log_dest none\n{extra}\n")
    proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the private mosquitto broker did not start")


async def run_demo(feed_mm_min: int = 24_000, *, motion: bool = True) -> int:
    with tempfile.TemporaryDirectory(prefix="station-agent-demo-") as tmp:
        work = Path(tmp)
        port = free_port()
        print(f"demo: private Mosquitto broker on 127.0.0.1:{port}")
        broker = start_broker(work, port)
        try:
            return await _run(work, port, feed_mm_min, motion)
        finally:
            broker.terminate()
            broker.wait(timeout=10)


async def _run(work: Path, port: int, feed_mm_min: int, motion: bool) -> int:
    link = work / "ttyGRBL"
    config: AgentConfig = parse_config({
        "station_id": "cutter-01",
        "profile": "grbl-1.1",
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": "mf"},
        "serial": {"port": str(link), "baud": 115200},
        "storage": {"dir": str(work / "state")},
    })
    ready = asyncio.Event()
    agents: list[Agent] = []

    def on_ready(agent: Agent) -> None:
        agents.append(agent)
        ready.set()

    stop = asyncio.Event()
    async with PtyEndpoint(link, baud=115_200, latency_s=0.002) as endpoint:
        emulator = GrblEmulator(endpoint, motion=motion)
        print(f"demo: emulated GRBL 1.1 knife cutter on {link}"
              f"{' (simulated motion)' if motion else ''}")
        async with asyncio.TaskGroup() as tg:
            emu_task = tg.create_task(emulator.run(), name="grbl-emulator")
            agent_task = tg.create_task(run_agent(config, stop=stop, on_ready=on_ready))
            await ready.wait()
            # Ready means set up locally; the job must wait until the agent has subscribed, or
            # a first-ever connection would find the broker has already dropped it.
            await agents[0].link.connected.wait()
            program = knife_gcode(tshirt_pieces(), feed_mm_min=feed_mm_min)
            job = {"job_id": f"tshirt-m-{int(time.time())}", "kind": "gcode", "program": program,
                   "meta": {"order": "SO-1042", "garment": "T-shirt, men's M", "fabric": "jersey"}}
            n = program.count("\n")
            print(f"demo: agent for station cutter-01 is up; submitting {job['job_id']} "
                  f"({n} lines: front, back, two sleeves)")
            code = await submit(job, station="cutter-01", host="127.0.0.1", port=port,
                                watch=True, timeout_s=600)
            print(f"demo: the emulator executed {len(emulator.executed)} lines; "
                  f"receive-buffer overflows: {emulator.overflow_bytes}")
            stop.set()
            await agent_task
            emu_task.cancel()
    print("demo: " + ("job succeeded" if code == 0 else f"job did not succeed (exit {code})"))
    return code


def main() -> int:
    try:
        return asyncio.run(run_demo())
    except KeyboardInterrupt:
        print("\ndemo: interrupted", file=sys.stderr)
        return 130
