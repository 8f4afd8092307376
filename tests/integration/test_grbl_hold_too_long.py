"""A job left in feed hold longer than the profile's ``hold_limit_s`` says so, over MQTT.

A person paused the job and nobody resumed or canceled it: after ``hold_limit_s`` the agent
publishes a ``warning`` event with ``detail.code = "hold_too_long"`` and the station's status
carries ``device.held_s`` and ``device.hold_limit_s`` until the hold ends.
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

pytestmark = pytest.mark.timeout(120)

PROFILES = Path(__file__).resolve().parents[2] / "firmware_profiles"


def _profile_with_hold_limit(tmp_path: Path, limit_s: float) -> Path:
    text = (PROFILES / "grbl-1.1.toml").read_text()
    text = text.replace("[grbl]\n", f"[grbl]\nhold_limit_s = {limit_s}\n", 1)
    path = tmp_path / "grbl-hold.toml"
    path.write_text(text.replace('name = "grbl-1.1"', 'name = "grbl-hold"', 1))
    return path


async def test_a_job_held_past_the_limit_warns_and_shows_in_status(
        tmp_path: Path, broker: Broker) -> None:
    link = tmp_path / "ttyGRBL"
    profile = _profile_with_hold_limit(tmp_path, 1.5)
    program = knife_gcode(tshirt_pieces()[:1], feed_mm_min=3_000)
    async with PtyEndpoint(link, baud=115_200, latency_s=0.001) as endpoint:
        emulator = GrblEmulator(endpoint, motion=True)
        async with background(emulator.run, "grbl"), Planner(broker.host, broker.port) as planner:
            config = agent_config(tmp_path, broker, link, profile=str(profile))
            async with running_agent(config) as agent:
                await agent.wait_device_online()
                await planner.submit({"job_id": "held", "kind": "gcode", "program": program})
                await planner.wait_event("held", "started")
                await planner.wait_for(lambda: len(emulator.executed) > 5, 30, "motion")
                await planner.command("pause", request_id="p1")
                await planner.wait_event("held", "paused")
                warning = await planner.wait_for(
                    lambda: [e for e in planner.events_for("held") if e["event"] == "warning"
                             and e["detail"].get("code") == "hold_too_long"],
                    30, "the hold_too_long warning")
                detail = warning[0]["detail"]
                assert detail["hold_limit_s"] == 1.5
                assert detail["held_s"] >= 1.5
                held_status = await planner.wait_for(
                    lambda: [s for s in planner.statuses if "held_s" in s.get("device", {})],
                    30, "held_s in the status")
                assert held_status[-1]["device"]["hold_limit_s"] == 1.5
                assert held_status[-1]["state"] == "paused"
                await planner.command("resume", request_id="r1")
                await planner.wait_event("held", "resumed")
                await planner.wait_for(
                    lambda: planner.statuses and "held_s" not in planner.statuses[-1]["device"],
                    30, "held_s gone from the status after the resume")
                await planner.command("cancel", request_id="c1")
                end = await planner.wait_terminal("held", timeout=60)
    assert end["event"] == "canceled", end
    # Told once for the one hold.
    warnings = [e for e in planner.events_for("held")
                if e["event"] == "warning" and e["detail"].get("code") == "hold_too_long"]
    assert len(warnings) == 1
