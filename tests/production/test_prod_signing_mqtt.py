"""Signed jobs through Mosquitto to real agents on GRBL emulators: a job signed for one cutter
does not run on another, and a refused signature never speaks for the job it claims to be."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.signing import read_private_key, sign_job, write_keypair
from tests.pools.test_pool_dispatch import label_job
from tests.support.broker import Broker
from tests.support.pool import POOL, PoolPlanner, PoolStation, keeper_config, running_keeper

pytestmark = pytest.mark.timeout(120)


def _keys(tmp: Path) -> tuple[bytes, dict[str, Any]]:
    key_path, _ = write_keypair(tmp / "keys", "planner-2026")
    return read_private_key(key_path), {"enabled": True, "public_keys_dir": str(tmp / "keys")}


def _signed(private: bytes, job: dict[str, Any], target: str | None, *,
            expires: datetime | None = None) -> dict[str, Any]:
    when = expires or datetime.now(UTC) + timedelta(minutes=10)
    return sign_job(job, private, "planner-2026", expires=when, target=target)


def _refusals(planner: PoolPlanner, station: str) -> list[dict[str, Any]]:
    return [e for e in planner.events if e["station"] == station and e["event"] == "rejected"]


async def test_a_job_signed_for_one_cutter_replayed_to_another_is_refused_there(
        tmp_path: Path, broker: Broker) -> None:
    private, signing = _keys(tmp_path)
    front = _signed(private, label_job("SO-1042-front-M"), "station:cutter-01")
    async with PoolPlanner(broker) as planner, \
            PoolStation(tmp_path, broker, "cutter-01", pools=(), signing=signing) as one, \
            PoolStation(tmp_path, broker, "cutter-02", pools=(), signing=signing) as two:
        # Captured on its way to cutter-01, replayed to cutter-02 (which trusts the same key).
        await planner.to_station(two.name, "job", front)
        await planner.wait_for(lambda: _refusals(planner, two.name), 20, "cutter-02's refusal")
        [refused] = _refusals(planner, two.name)
        assert refused["job_id"] is None
        error = refused["detail"]["error"]
        assert error["code"] == "wrong_target"
        assert (error["claimed_job_id"], error["verified"]) == ("SO-1042-front-M", True)
        assert error["signed_for"] == "station:cutter-01"
        # The job itself runs where it was meant to, once.
        await planner.to_station(one.name, "job", front)
        done = await planner.wait_event("SO-1042-front-M", "succeeded", timeout=60)
        assert done["station"] == one.name
        assert [e["station"] for e in planner.events
                if e["job_id"] == "SO-1042-front-M" and e["event"] == "accepted"] == [one.name]
    assert one.executed() != ""
    assert two.executed() == ""  # nothing reached cutter-02's machine


async def test_a_refused_signature_is_reported_with_no_job_id(
        tmp_path: Path, broker: Broker) -> None:
    private, signing = _keys(tmp_path)
    good = _signed(private, label_job("SO-1042-back-M"), "station:cutter-01")
    tampered = copy.deepcopy(good)
    tampered["program"] = good["program"].replace("F", "F9", 1)  # altered after signing
    expired = _signed(private, label_job("SO-1042-sleeve-M"), "station:cutter-01",
                      expires=datetime.now(UTC) - timedelta(minutes=1))
    untargeted = _signed(private, label_job("SO-1042-collar-M"), None)
    pool_signed = _signed(private, label_job("SO-1042-pocket-M"), f"pool:{POOL}")
    cases = [  # (job, code, verified)
        (tampered, "bad_signature", False),
        (expired, "bad_signature", True),
        (untargeted, "untargeted_signature", True),
        # Signed for the pool, sent straight to a member: the keeper would not know of it.
        (pool_signed, "wrong_target", True),
    ]
    async with PoolPlanner(broker) as planner, \
            PoolStation(tmp_path, broker, "cutter-01", pools=(), signing=signing) as station:
        for job, _, _ in cases:
            await planner.to_station(station.name, "job", job)
        await planner.wait_for(lambda: len(_refusals(planner, station.name)) == len(cases), 20,
                               "every refusal")
        refusals = _refusals(planner, station.name)
        for event, (job, code, verified) in zip(refusals, cases, strict=True):
            assert event["job_id"] is None, event
            error = event["detail"]["error"]
            assert (error["code"], error["claimed_job_id"], error["verified"]) == (
                code, job["job_id"], verified), error
        # None of them was the real job's end: the authentic one still runs.
        await planner.to_station(station.name, "job", good)
        await planner.wait_event("SO-1042-back-M", "succeeded", timeout=60)
        assert planner.names_for("SO-1042-back-M")[0] == "accepted"
        assert "rejected" not in planner.names_for("SO-1042-back-M")


async def test_a_job_signed_for_a_pool_runs_through_that_pool(
        tmp_path: Path, broker: Broker) -> None:
    private, signing = _keys(tmp_path)
    pocket = _signed(private, label_job("SO-1042-pocket-L"), f"pool:{POOL}")
    other_pool = _signed(private, label_job("SO-1042-hood-L"), "pool:lasers")
    async with PoolPlanner(broker) as planner, running_keeper(keeper_config(tmp_path, broker)), \
            PoolStation(tmp_path, broker, "knife-01", signing=signing) as station:
        await planner.to_pool(pocket)
        done = await planner.wait_event("SO-1042-pocket-L", "succeeded", timeout=60)
        assert done["station"] == station.name
        ran = station.executed()
        # Signed for another pool, published to this one: the member refuses it.
        await planner.to_pool(other_pool)
        await planner.wait_for(lambda: _refusals(planner, station.name), 20, "the refusal")
        [refused] = _refusals(planner, station.name)
        assert refused["job_id"] is None
        assert refused["detail"]["error"]["code"] == "wrong_target"
        assert refused["detail"]["error"]["claimed_job_id"] == "SO-1042-hood-L"
        await planner.wait_for(lambda: [r for r in planner.replies
                                        if r["job_id"] == "SO-1042-hood-L"
                                        and r["answer"] == "rejected"], 20, "its answer")
        assert station.executed() == ran
