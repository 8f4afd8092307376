"""A toolpaths job published on MQTT is compiled by the station and cut on an emulated GRBL
knife over a real pty: the machine executes exactly the compiled program."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.profiles import load_profile
from agent.schemas.job import JobRequest
from agent.toolpaths import compile_toolpaths
from tests.support.broker import Broker
from tests.support.rig import grbl_rig
from tests.toolpaths.garments import tshirt_paths

pytestmark = pytest.mark.timeout(180)


def tshirt_job_payload(job_id: str, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "job_id": job_id,
        "kind": "toolpaths",
        "toolpaths": {"units": "mm", "paths": tshirt_paths(), "settings": {"speed_mm_s": 120.0}},
        "meta": {"order": "SO-1042", "garment": "tshirt", "size": "M"},
    }
    payload.update(extra)
    return payload


async def test_tshirt_toolpaths_job_is_cut_as_compiled(tmp_path: Path, broker: Broker) -> None:
    payload = tshirt_job_payload("SO-1042-tshirt-m-tp")
    # What the station should send: the job compiled for its profile (the job's 120 mm/s
    # cut speed is F7200).
    compiled = compile_toolpaths(
        JobRequest.model_validate_json(json.dumps(payload)), load_profile("grbl-knife")
    )
    assert "F7200" in "".join(compiled.lines)
    async with grbl_rig(tmp_path, broker, latency_s=0.001, profile="grbl-knife") as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit(payload)
        end = await planner.wait_terminal(payload["job_id"], timeout=120)
        assert end["event"] == "succeeded", end
    # The record is the compiled program, in order, plus the agent's motion-complete fence.
    assert emulator.executed == [*compiled.lines, "G4P0"]
    assert emulator.overflow_bytes == 0


async def test_a_job_too_big_for_the_bed_is_rejected_before_anything_is_sent(
    tmp_path: Path, broker: Broker
) -> None:
    payload = tshirt_job_payload("SO-1042-tshirt-x2", copies=2)
    async with grbl_rig(tmp_path, broker, latency_s=0.001, profile="grbl-knife") as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit(payload)
        end = await planner.wait_terminal(payload["job_id"], timeout=60)
    assert end["event"] == "rejected", end
    error = end["detail"]["error"]
    assert error["code"] == "out_of_bounds"
    # The second row of copies leaves the 1000 mm bed: the message gives the extent.
    assert "y 9.750..1400.249 mm after offset, overcut and copies" in error["message"]
    assert emulator.executed == []
