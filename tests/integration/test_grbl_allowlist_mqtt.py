"""End to end: every attack line, published as a job over a real Mosquitto to an agent driving
the GRBL emulator on a real pty, is rejected with its line, and nothing of it reaches the port.

One agent takes all the jobs (one per attack line) so the test stays short; each rejection is
then checked on its own. The emulator's ``received`` log holds every byte written to the port:
while the attack jobs are rejected it may only see the agent's ``?`` status polls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.broker import Broker
from tests.support.grbl_attacks import ATTACK_LINE, ATTACKS, attack_program
from tests.support.rig import grbl_rig

pytestmark = pytest.mark.timeout(180)

# Line breaks other than LF/CRLF: refused where they stand (line 3, column 6).
LINE_BREAKS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def _rejections(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["job_id"]: e for e in events if e["event"] == "rejected"}


async def test_attack_jobs_are_rejected_and_nothing_reaches_the_machine(
    tmp_path: Path, broker: Broker
) -> None:
    jobs: dict[str, tuple[str, str, str]] = {}  # job_id -> (program, code, named)
    for i, (line, named) in enumerate(ATTACKS):
        jobs[f"attack-{i}"] = (attack_program(line), "blocked_instruction", named)
    for i, sep in enumerate(LINE_BREAKS):
        program = f"G21 G90\nG0 X20 Y20\nG0 X1{sep}$H\nG0 X0 Y0\n"
        jobs[f"break-{i}"] = (program, "bad_line_break", "column 6")
    async with grbl_rig(tmp_path, broker) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.wait_status("idle")
        start = len(emulator.received)
        lines_before = [entry for entry in emulator.log if entry[0] == "line"]
        executed_before = list(emulator.executed)
        for job_id, (program, _code, _named) in jobs.items():
            await planner.submit({"job_id": job_id, "kind": "gcode", "program": program})
        await planner.wait_for(
            lambda: len(_rejections(planner.events)) == len(jobs), 60, "every rejection"
        )
        during = bytes(emulator.received[start:])
        # A harmless job afterwards runs: the port was live all along.
        await planner.submit({"job_id": "label-ok", "kind": "gcode",
                              "program": "G21 G90\nG0 X20 Y20\nG0 X0 Y0\n"})
        assert (await planner.wait_terminal("label-ok"))["event"] == "succeeded"

    rejected = _rejections(planner.events)
    for job_id, (_program, code, named) in jobs.items():
        error = rejected[job_id]["detail"]["error"]
        assert error["code"] == code, (job_id, error)
        assert error["line"] == ATTACK_LINE, (job_id, error)
        assert named in error["message"], (job_id, error)
        # Nothing but the rejection was ever said about these jobs.
        assert planner.names_for(job_id) == ["rejected"], job_id
    # While the attack jobs came and went, the port saw status polls and nothing else.
    assert during.replace(b"?", b"") == b"", during[:200]
    # The only lines the machine ever took: the agent's own $I and $$ (build info, and the
    # settings the time estimate plans with: both read-only) at connect, then the harmless job.
    label = ["G21G90", "G0X20Y20", "G0X0Y0", "G4P0"]
    assert lines_before == [("line", "$I"), ("line", "$$")]
    assert [entry for entry in emulator.log if entry[0] == "line"] == [
        *lines_before, *(("line", line) for line in label)
    ]
    assert executed_before == []
    assert emulator.executed == label
    assert emulator.system_commands == ["$I", "$$"]
    assert emulator.settings[100] == 80.0
    assert emulator.startup_lines == ["", ""]
    assert emulator.state == "Idle"
