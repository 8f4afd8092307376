"""A station's side of pool dispatch, driven by a stand-in keeper over a real broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.pools.test_pool_dispatch import hold_job, label_job
from tests.support.broker import Broker
from tests.support.pool import POOL, PoolPlanner, PoolStation

pytestmark = pytest.mark.timeout(120)


def _assignment(token: str, job: dict[str, Any]) -> dict[str, Any]:
    return {"v": 1, "pool": POOL, "assignment": token, "job": job}


def _offer(token: str, job_id: str, kind: str = "gcode") -> dict[str, Any]:
    return {"v": 1, "pool": POOL, "job_id": job_id, "kind": kind, "offer": token}


async def test_offers_are_claimed_only_when_free(tmp_path: Path, broker: Broker) -> None:
    async with PoolPlanner(broker) as planner, PoolStation(tmp_path, broker, "knife-01") as st:
        await planner.to_station(st.name, "offer", _offer("1-1", "front-1"))
        await planner.to_station(st.name, "offer", _offer("1-2", "marker-1", kind="hpgl"))
        await planner.to_station(st.name, "offer", {**_offer("1-3", "x"), "pool": "lasers"})
        await planner.wait_for(lambda: len(planner.replies) == 3, 20, "three answers")
        await planner.to_station(st.name, "job", hold_job("hold-1"))
        await planner.wait_event("hold-1", "awaiting_operator")
        await planner.to_station(st.name, "offer", _offer("1-4", "front-2"))
        await planner.wait_for(lambda: len(planner.replies) == 4, 20, "fourth answer")
        answers = [(r["token"], r["answer"], r.get("reason")) for r in planner.replies]
        assert answers == [("1-1", "claim", None), ("1-2", "decline", "kind_not_supported"),
                           ("1-3", "decline", "not_a_member"),
                           ("1-4", "decline", "awaiting_operator")]
        assert all(r["station"] == st.name for r in planner.replies)
        # Offers alone never make a station do anything.
        assert planner.events_for("front-1") == []
        await planner.to_station(st.name, "cmd", {"cmd": "cancel", "job_id": "hold-1"})
        await planner.wait_event("hold-1", "canceled")


async def test_a_busy_station_hands_an_assignment_back_and_never_runs_it_later(
        tmp_path: Path, broker: Broker) -> None:
    async with PoolPlanner(broker) as planner, PoolStation(tmp_path, broker, "knife-01") as st:
        await planner.to_station(st.name, "job", hold_job("hold-1"))
        await planner.wait_event("hold-1", "awaiting_operator")
        await planner.to_station(st.name, "pool_job", _assignment("1-7", label_job("back-1")))
        await planner.wait_for(lambda: planner.replies, 20, "an answer")
        assert planner.replies[0]["answer"] == "handback"
        await planner.to_station(st.name, "cmd", {"cmd": "cancel", "job_id": "hold-1"})
        await planner.wait_event("hold-1", "canceled")
        await planner.wait_status_of(st.name, "idle")
        # The same assignment delivered again (a broker redelivery): the same answer, no run.
        await planner.to_station(st.name, "pool_job", _assignment("1-7", label_job("back-1")))
        await planner.wait_for(lambda: len(planner.replies) == 2, 20, "the answer again")
        assert planner.replies[1]["answer"] == "handback"
        # A new assignment of the same job, now that the station is free: taken, run once.
        await planner.to_station(st.name, "pool_job", _assignment("1-9", label_job("back-1")))
        await planner.wait_event("back-1", "succeeded", timeout=60)
        assert [r["answer"] for r in planner.replies] == ["handback", "handback", "taken"]
        accepted = await planner.wait_event("back-1", "accepted")
        assert accepted["detail"]["station"] == st.name
        assert accepted["detail"]["pool"] == POOL
        assert planner.started("back-1") == [st.name]
        # And the taken assignment delivered again is answered, not run again.
        await planner.to_station(st.name, "pool_job", _assignment("1-9", label_job("back-1")))
        await planner.wait_for(lambda: len(planner.replies) == 4, 20)
        assert planner.replies[3]["answer"] == "taken"
        assert planner.started("back-1") == [st.name]


async def test_an_assignment_the_station_cannot_run_is_rejected_to_the_planner(
        tmp_path: Path, broker: Broker) -> None:
    async with PoolPlanner(broker) as planner, PoolStation(tmp_path, broker, "knife-01") as st:
        await planner.to_station(st.name, "pool_job", _assignment("2-1", {
            "job_id": "reset-1", "kind": "gcode", "program": "G0 X10\n$RST=*\n"}))
        await planner.wait_for(lambda: planner.replies, 20)
        rejected = await planner.wait_event("reset-1", "rejected")
        assert planner.replies[0]["answer"] == "rejected"
        assert planner.replies[0]["reason"] == rejected["detail"]["error"]["code"]
