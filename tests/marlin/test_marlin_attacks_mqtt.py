"""Issue 13 through the whole agent: attack jobs published over a real Mosquitto to a Marlin
station are rejected by name and line, and not one of their lines reaches the serial port."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.emulators.marlin import parse_command
from tests.marlin.test_marlin_allowlist import ATTACKS, WORK_AFTER, WORK_BEFORE, attack_program
from tests.support.broker import Broker
from tests.support.rig import marlin_rig

pytestmark = pytest.mark.timeout(120)

# What the agent itself sends to a Marlin board between jobs: numbering, the handshake, reports.
HOST_WORDS = frozenset({"M110", "M115", "M155", "M113", "M105"})


async def test_attack_jobs_are_rejected_and_nothing_reaches_the_port(
    tmp_path: Path, broker: Broker
) -> None:
    async with marlin_rig(tmp_path, broker) as rig:
        emulator, planner = rig.emulator, rig.planner
        ids = [f"attack-{i:02d}" for i in range(len(ATTACKS))]
        for job_id, (line, _command) in zip(ids, ATTACKS, strict=True):
            await planner.submit({"job_id": job_id, "kind": "gcode",
                                  "program": attack_program(line)})
        ends = {job_id: await planner.wait_terminal(job_id, timeout=30)
                for job_id in ids}
        attack_log = list(emulator.log)
        # The same rig runs the work lines when no attack line is among them.
        await planner.submit({"job_id": "clean-01", "kind": "gcode",
                              "program": WORK_BEFORE + WORK_AFTER})
        clean = await planner.wait_terminal("clean-01", timeout=60)
    for job_id, (line, command) in zip(ids, ATTACKS, strict=True):
        end = ends[job_id]
        assert end["event"] == "rejected", (line, end)
        error = end["detail"]["error"]
        assert error["code"] == "blocked_instruction", (line, error)
        assert error["line"] == 3, (line, error)
        assert command in error["message"], (line, error)
        assert "succeeded" not in planner.names_for(job_id)
    # Nothing of any attack job went out: only the agent's own protocol lines were written.
    sent = {parse_command(wire_line).word for wire_line in attack_log}
    assert sent <= HOST_WORDS, sent - HOST_WORDS
    assert not any("G1 X20" in wire_line for wire_line in attack_log)
    assert clean["event"] == "succeeded", clean
    ran = [c for c in emulator.executed if parse_command(c).word not in HOST_WORDS | {"M400"}]
    assert ran == ["G21", "G90", "G1 X20 Y20 F3000", "G4 P3000", "G1 X40 Y20"]
