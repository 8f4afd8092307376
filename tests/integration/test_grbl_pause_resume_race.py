"""Pause and resume back to back: the machine must never be left held with the job 'busy'.

GRBL ignores ``~`` while a feed hold is still decelerating (``Hold:1``, protocol.c only
resumes from a completed hold), and a status report asked for before a ``!`` may arrive after
it still saying ``Hold:0`` from the previous pause. A resume that trusts that report sends its
``~`` into ``Hold:1``, where it is lost, and the job waits forever.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.emulators.grbl import GrblEmulator
from agent.emulators.pty import PtyEndpoint
from agent.garments import knife_gcode, tshirt_pieces
from tests.support.broker import Broker
from tests.support.planner import Planner
from tests.support.station import agent_config, background, running_agent

pytestmark = pytest.mark.timeout(240)

PAIRS = 20


async def test_twenty_pause_resume_pairs_back_to_back_leave_the_job_running(
        tmp_path: Path, broker: Broker) -> None:
    link = tmp_path / "ttyGRBL"
    program = knife_gcode(tshirt_pieces()[:2], feed_mm_min=30_000)  # front and back
    async with PtyEndpoint(link, baud=115_200, latency_s=0.001) as endpoint:
        emulator = GrblEmulator(endpoint, motion=True)
        async with background(emulator.run, "grbl"), Planner(broker.host, broker.port) as planner:
            async with running_agent(agent_config(tmp_path, broker, link)) as agent:
                await agent.wait_device_online()
                await planner.submit({"job_id": "back-M", "kind": "gcode", "program": program})
                await planner.wait_event("back-M", "started")
                await planner.wait_for(lambda: len(emulator.executed) > 20, 30, "motion")
                for n in range(PAIRS):
                    # Published at once, one after the other: no waiting for the hold.
                    await planner.command("pause", request_id=f"p{n}")
                    await planner.command("resume", request_id=f"r{n}")
                resumed = await planner.wait_for(
                    lambda: [e for e in planner.events_for("back-M")
                             if e["event"] == "resumed"
                             and e["detail"].get("request_id") == f"r{PAIRS - 1}"],
                    120, "the last resume answered")
                assert resumed
                end = await planner.wait_terminal("back-M", timeout=120)
    assert end["event"] == "succeeded", end
    assert not emulator.state.startswith("Hold")
    # Every pause was answered, and every resume too: none lost, none refused.
    names = [e["event"] for e in planner.events_for("back-M")]
    assert names.count("paused") == PAIRS
    assert names.count("resumed") == PAIRS
