"""The retained ``queue`` topic: the waiting jobs with their estimates and when the queue ends.

A GRBL cutter that moves (the emulator's motion model) runs the T-shirt front while the back and
a sleeve wait; a person sizing the day's work reads one retained message.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.garments import knife_gcode, tshirt_pieces
from tests.support.broker import Broker
from tests.support.rig import grbl_rig

pytestmark = pytest.mark.timeout(180)


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_the_queue_view_lists_waiting_jobs_with_estimates_and_the_finish(
        tmp_path: Path, broker: Broker) -> None:
    front, back, sleeve = tshirt_pieces()[:3]
    async with grbl_rig(tmp_path, broker, latency_s=0.001, motion=True) as rig:
        planner = rig.planner
        await planner.submit({"job_id": "SO-77-front", "kind": "gcode",
                              "program": knife_gcode([front], feed_mm_min=3000)})
        await planner.wait_event("SO-77-front", "started")
        for job_id, piece in (("SO-77-back", back), ("SO-77-sleeve", sleeve)):
            await planner.submit({"job_id": job_id, "kind": "gcode",
                                  "program": knife_gcode([piece], feed_mm_min=3000)})
            await planner.wait_event(job_id, "accepted")

        def both_waiting(view: dict[str, Any]) -> bool:
            return [w["job_id"] for w in view["waiting"]] == ["SO-77-back", "SO-77-sleeve"]

        await planner.wait_for(lambda: any(both_waiting(v) for v in planner.queues), 30,
                               "a queue view with both jobs waiting")
        view = next(v for v in reversed(planner.queues) if both_waiting(v))
        assert view["running"]["job_id"] == "SO-77-front"
        estimates = {e["job_id"]: e["detail"]["estimated_s"] for e in planner.events
                     if e["event"] == "accepted"}
        assert [w["estimated_s"] for w in view["waiting"]] == [
            estimates["SO-77-back"], estimates["SO-77-sleeve"]]
        remaining = view["running"]["remaining_s"]
        assert 0 < remaining <= estimates["SO-77-front"]
        assert view["unestimated"] == 0
        assert view["total_s"] == pytest.approx(
            remaining + estimates["SO-77-back"] + estimates["SO-77-sleeve"], abs=0.2)
        finish = _when(view["expected_finish"]) - _when(view["ts"])
        assert finish == pytest.approx(timedelta(seconds=view["total_s"]),
                                       abs=timedelta(milliseconds=2))

        for job_id in ("SO-77-sleeve", "SO-77-back"):
            await planner.command("cancel", job_id=job_id)
            await planner.wait_terminal(job_id)
        await planner.command("cancel", job_id="SO-77-front")
        await planner.wait_terminal("SO-77-front")
        await planner.wait_for(
            lambda: planner.queues and planner.queues[-1]["running"] is None
            and planner.queues[-1]["waiting"] == [], 30, "an empty queue view")
    last = planner.queues[-1]
    assert last["total_s"] == 0.0
    assert last["expected_finish"] == last["ts"]
