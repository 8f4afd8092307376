"""A job published on MQTT runs on an emulated GRBL cutter over a real pty, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.dialects.grbl import prepare_grbl_program
from agent.garments import knife_gcode, tshirt_knife_job, tshirt_pieces
from agent.profiles import load_profile
from agent.profiles.grbl import GrblProfile
from tests.support.broker import Broker
from tests.support.rig import after_status_polls, grbl_rig

pytestmark = pytest.mark.timeout(180)


def _normalised(program: str) -> list[str]:
    profile = load_profile("grbl-1.1")
    assert isinstance(profile, GrblProfile)
    return list(prepare_grbl_program(program, profile).lines)


async def test_two_thousand_line_job_runs_exactly(tmp_path: Path, broker: Broker) -> None:
    program = tshirt_knife_job(min_lines=2000)
    async with grbl_rig(tmp_path, broker, latency_s=0.002) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "SO-1042-tshirt-m", "kind": "gcode", "program": program})
        end = await planner.wait_terminal("SO-1042-tshirt-m", timeout=120)
        assert end["event"] == "succeeded", end
        await planner.wait_status("idle")
    expected = _normalised(program)
    assert len(expected) >= 2000
    # The record is the program, in order, plus the agent's motion-complete fence.
    assert emulator.executed == [*expected, "G4P0"]
    assert emulator.overflow_bytes == 0
    names = planner.names_for("SO-1042-tshirt-m")
    assert names[0:2] == ["accepted", "started"]
    assert names[-1] == "succeeded"
    assert set(names[2:-1]) == {"progress"}
    progress = [e["detail"] for e in planner.events_for("SO-1042-tshirt-m")
                if e["event"] == "progress"]
    assert progress[-1]["lines_done"] == progress[-1]["lines_total"] == len(expected)
    assert progress[-1]["percent"] == 100
    assert [p["lines_done"] for p in progress] == sorted(p["lines_done"] for p in progress)
    seqs = [e["seq"] for e in planner.events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    states = [s["state"] for s in planner.statuses]
    assert "busy" in states
    assert states.index("busy") < len(states) - 1 - states[::-1].index("idle")


async def test_pause_resume_and_cancel_mid_job(tmp_path: Path, broker: Broker) -> None:
    program = knife_gcode(tshirt_pieces(), feed_mm_min=30_000)
    async with grbl_rig(tmp_path, broker, latency_s=0.001, motion=True) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "front-1", "kind": "gcode", "program": program})
        await planner.wait_event("front-1", "started")
        await planner.wait_for(lambda: len(emulator.executed) > 20, 30, "motion")
        await planner.command("pause", request_id="r1")
        paused = await planner.wait_event("front-1", "paused")
        assert paused["detail"]["request_id"] == "r1"
        await planner.wait_status("paused")
        await rig.eventually(lambda: emulator.state == "Hold:0", "hold complete", 10)
        held_at = len(emulator.executed)
        # Nothing more is taken from the buffer while held, however often the agent looks.
        await after_status_polls(rig, 3)
        assert len(emulator.executed) == held_at
        await planner.command("resume", request_id="r2")
        await planner.wait_event("front-1", "resumed")
        await rig.eventually(lambda: len(emulator.executed) > held_at + 5, "resume", 30)
        await planner.command("cancel", request_id="r3")
        canceled = await planner.wait_terminal("front-1")
        assert canceled["event"] == "canceled"
        assert canceled["detail"]["request_id"] == "r3"
        assert emulator.alarms_sent == []  # hold before reset: position kept
        stopped_at = len(emulator.executed)
        assert stopped_at < len(_normalised(program))
        # A command that no longer applies is answered, not ignored.
        await planner.command("resume", request_id="r4")
        rejected = await planner.wait_for(
            lambda: [e for e in planner.events if e["event"] == "rejected"], 10, "rejection")
        assert rejected[0]["detail"]["error"]["code"] == "not_applicable"
        assert rejected[0]["detail"]["request_id"] == "r4"
        # The machine is ready for the next job.
        await planner.submit({"job_id": "label-1", "kind": "gcode",
                              "program": "G21 G90\nG0 X10 Y10\nG1 X50 Y10 F3000\n"})
        assert (await planner.wait_terminal("label-1"))["event"] == "succeeded"


async def test_error_line_fails_job_with_code_meaning_and_line(tmp_path: Path,
                                                              broker: Broker) -> None:
    # This station's controller was built without mist coolant: M7 answers error:20.
    program = "G21 G90\nG0 X20 Y20\nG1 Z-1 F600\nG1 X540 Y20 F3000\nM7\nG1 X540 Y500\nG0 Z5\n"
    async with grbl_rig(tmp_path, broker, unsupported=frozenset({"M7"})) as rig:
        await rig.planner.submit({"job_id": "front-2", "kind": "gcode", "program": program})
        end = await rig.planner.wait_terminal("front-2")
    assert end["event"] == "failed"
    error = end["detail"]["error"]
    assert error["code"] == "device_error"
    assert error["device_code"] == "error:20"
    assert "Unsupported" in error["message"]
    assert error["line"] == 5
    assert error["text"] == "M7"


async def test_bad_payloads_are_rejected_and_the_next_job_runs(tmp_path: Path,
                                                              broker: Broker) -> None:
    async with grbl_rig(tmp_path, broker, config={"mqtt": {"max_payload_bytes": 4096}}) as rig:
        emulator, planner = rig.emulator, rig.planner
        bad: list[tuple[bytes, str]] = [
            (b'{"job_id": "a", "kind": "gcode", "program": ', "invalid_json"),
            (b'{"kind": "gcode", "program": "G0 X1"}', "missing_field"),
            (b'{"job_id": "b", "kind": "dxf", "program": "0"}', "unsupported_kind"),
            (b'{"job_id": "c", "kind": "gcode", "program": "' + b"G0X1 " * 2000 + b'"}',
             "payload_too_large"),
            (b'{"job_id": "d", "kind": "gcode", "program": "$H"}', "blocked_instruction"),
            (b"\xff\xfe{}", "invalid_encoding"),
            (b"[]", "invalid_json"),
        ]
        for payload, _code in bad:
            await planner.publish("job", payload)
        await planner.wait_for(
            lambda: len([e for e in planner.events if e["event"] == "rejected"])
            == len(bad), 20, "every rejection")
        rejected = [e for e in planner.events if e["event"] == "rejected"]
        assert [e["detail"]["error"]["code"] for e in rejected] == [c for _, c in bad]
        assert all(e["detail"]["error"]["message"] for e in rejected)
        assert rejected[4]["detail"]["error"]["line"] == 1
        await planner.submit({"job_id": "label-2", "kind": "gcode",
                              "program": "G21\nG0 X5 Y5\nG1 X45 Y5 F1500\n"})
        assert (await planner.wait_terminal("label-2"))["event"] == "succeeded"
    assert emulator.executed == ["G21", "G0X5Y5", "G1X45Y5F1500", "G4P0"]
