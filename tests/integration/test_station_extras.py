"""Through the whole agent: signed jobs, a fallback broker, systemd readiness, a Marlin station."""

from __future__ import annotations

import asyncio
import copy
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.aio import wait_within
from agent.app import run_agent
from agent.garments import knife_gcode, tshirt_sleeve
from agent.sdnotify import Notifier
from agent.signing import read_private_key, sign_job, write_keypair
from tests.support.broker import Broker, free_port
from tests.support.planner import Planner
from tests.support.rig import grbl_rig, marlin_rig
from tests.support.station import agent_config, running_agent

pytestmark = pytest.mark.timeout(120)

LABEL = "G21 G90\nG0 X10 Y10\nG1 X50 Y10 F1200\nG1 X50 Y70\nG1 X10 Y70\nG1 X10 Y10\n"


async def test_only_validly_signed_jobs_reach_the_machine(tmp_path: Path, broker: Broker) -> None:
    keys = tmp_path / "keys"
    key_path, _ = write_keypair(keys, "planner-2026")
    private = read_private_key(key_path)
    soon = datetime.now(UTC) + timedelta(minutes=10)
    good = sign_job({"job_id": "label-s1", "kind": "gcode", "program": LABEL}, private,
                    "planner-2026", expires=soon, target="station:cutter-01")
    forged = copy.deepcopy(good)
    forged["job_id"] = "label-s2"
    tampered = copy.deepcopy(good)
    tampered["program"] = LABEL.replace("X50", "X500")  # replayed with a change
    expired = sign_job({"job_id": "label-s3", "kind": "gcode", "program": LABEL}, private,
                       "planner-2026", expires=datetime.now(UTC) - timedelta(minutes=1),
                       target="station:cutter-01")
    unsigned = {"job_id": "label-s4", "kind": "gcode", "program": LABEL}
    signing = {"enabled": True, "public_keys_dir": str(keys)}
    async with grbl_rig(tmp_path, broker, config={"signing": signing}) as rig:
        emulator, planner = rig.emulator, rig.planner
        for job in (forged, tampered, expired, unsigned):
            await planner.submit(job)
        await planner.wait_for(lambda: sum(e["event"] == "rejected"
                                           for e in planner.events) == 4, 20,
                               "four rejections")
        await planner.submit(good)
        # (the tampered copy shares label-s1's id: its rejection is not the job's end)
        await planner.wait_event("label-s1", "succeeded")
    rejected = [e for e in planner.events if e["event"] == "rejected"]
    assert {e["detail"]["error"]["code"] for e in rejected} == {"bad_signature"}
    # Only the good job's lines reached the machine.
    assert emulator.executed == ["G21G90", "G0X10Y10", "G1X50Y10F1200", "G1X50Y70", "G1X10Y70",
                                 "G1X10Y10", "G4P0"]


async def test_fallback_broker_is_used_when_the_first_is_down(tmp_path: Path,
                                                              broker: Broker) -> None:
    dead_port = free_port()  # nothing listens here
    config = agent_config(tmp_path, broker, tmp_path / "no-tty",
                          mqtt={"port": dead_port,
                                "fallback": [{"host": broker.host, "port": broker.port}]})
    async with Planner(broker.host, broker.port) as planner, running_agent(config) as agent:
        await agent.wait_broker(timeout=20)
        status = await planner.wait_status("device_offline")
        assert status["station"] == "cutter-01"


async def test_ready_is_sent_before_the_broker_answers(tmp_path: Path, broker: Broker) -> None:
    sock_path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(sock_path))
    server.setblocking(False)
    broker.stop()  # the broker is down at boot
    config = agent_config(tmp_path, broker, tmp_path / "no-tty")
    stop = asyncio.Event()
    notifier = Notifier({"NOTIFY_SOCKET": str(sock_path)})
    task = asyncio.create_task(run_agent(config, stop=stop, notifier=notifier))
    loop = asyncio.get_running_loop()
    try:
        message = await wait_within(loop.sock_recv(server, 4096), 20)
        assert b"READY=1" in message.split(b"\n")
        assert not task.done()
    finally:
        stop.set()
        await wait_within(task, 20)
        server.close()


async def test_a_marlin_station_runs_a_job_end_to_end(tmp_path: Path, broker: Broker) -> None:
    program = knife_gcode([("sleeve", tshirt_sleeve(12), (20.0, 20.0))], feed_mm_min=3000)
    program = program.replace("G21 G90 G94\n", "G21\nG90\nG94\n")  # Marlin: one per line
    async with marlin_rig(tmp_path, broker, advanced_ok=True, corrupt_fraction=0.02,
                          seed=7) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "sleeve-m1", "kind": "gcode",
                              "program": program})
        end = await planner.wait_terminal("sleeve-m1", timeout=60)
    assert end["event"] == "succeeded", end
    cut_lines = [line for line in emulator.executed if line.startswith("G1 X")]
    assert len(cut_lines) == program.count("\nG1 X")
    assert len(set(cut_lines)) >= len(cut_lines) - 1  # closing point repeats the start

