"""Pool jobs through a real Mosquitto, a real keeper and real stations with GRBL emulators."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agent.emulators.grbl import GrblEmulator
from agent.emulators.pty import PtyEndpoint
from agent.garments import care_label, knife_gcode
from tests.support.broker import Broker
from tests.support.pool import (
    POOL,
    PoolPlanner,
    PoolStation,
    RunningKeeper,
    keeper_config,
    running_keeper,
)
from tests.support.station import AgentProcess, agent_config, background, write_config_file

pytestmark = pytest.mark.timeout(180)


def label_job(job_id: str, x: float = 20.0) -> dict[str, Any]:
    """A woven care label's outline, cut on the knife cutter: a small, real job."""
    pieces = [(f"label-{i}", outline, (x, 20.0 + 40 * i)) for i, outline in enumerate(care_label())]
    return {"job_id": job_id, "kind": "gcode", "program": knife_gcode(pieces),
            "meta": {"order": "SO-1042", "garment": "tshirt", "piece": "care-label"}}


def hold_job(job_id: str) -> dict[str, Any]:
    """A direct job that keeps its station busy until it is canceled (waits for the operator)."""
    return {**label_job(job_id), "require_operator_start": True}


async def test_a_pool_job_goes_only_to_a_free_station(tmp_path: Path, broker: Broker) -> None:
    async with PoolPlanner(broker) as planner, running_keeper(keeper_config(tmp_path, broker)), \
            PoolStation(tmp_path, broker, "knife-01") as busy, \
            PoolStation(tmp_path, broker, "knife-02") as stopped, \
            PoolStation(tmp_path, broker, "knife-03") as gone, \
            PoolStation(tmp_path, broker, "knife-04") as free:
        await planner.to_station(busy.name, "job", hold_job("hold-1"))
        await planner.wait_event("hold-1", "awaiting_operator")
        await planner.to_station(stopped.name, "cmd", {"cmd": "estop"})
        await planner.wait_for(lambda: any(s["station"] == stopped.name and s["state"] == "estop"
                                           for s in planner.statuses))
        await gone.agent.shutdown()
        for n in range(4):
            await planner.to_pool(label_job(f"pool-{n}"))
        for n in range(4):
            await planner.wait_event(f"pool-{n}", "succeeded", timeout=60)
        for n in range(4):
            assert planner.accepted_by(f"pool-{n}") == [free.name]
            assert planner.started(f"pool-{n}") == [free.name]
        accepted = [e for e in planner.events if e["event"] == "accepted"
                    and e["job_id"].startswith("pool-")]
        assert {e["detail"]["pool"] for e in accepted} == {"knife-cutters"}
        assert busy.executed() == stopped.executed() == gone.executed() == ""
        await planner.to_station(busy.name, "cmd", {"cmd": "cancel", "job_id": "hold-1"})
        await planner.wait_event("hold-1", "canceled")


async def test_pool_jobs_wait_for_a_free_station_then_each_runs_once(
        tmp_path: Path, broker: Broker) -> None:
    async with PoolPlanner(broker) as planner, \
            running_keeper(keeper_config(tmp_path, broker)) as keeper, \
            PoolStation(tmp_path, broker, "knife-01") as a, \
            PoolStation(tmp_path, broker, "knife-02") as b:
        for station in (a, b):
            await planner.to_station(station.name, "job", hold_job(f"hold-{station.name}"))
            await planner.wait_event(f"hold-{station.name}", "awaiting_operator")
        jobs = [f"pool-{n}" for n in range(6)]
        for job_id in jobs:
            await planner.to_pool(label_job(job_id))
        assert keeper.keeper is not None
        dispatcher = keeper.keeper.dispatcher
        await planner.wait_for(lambda: dispatcher.counts()["waiting"] == 6, 20, "6 jobs held")
        assert not [e for e in planner.events if e["job_id"] in jobs]
        await planner.to_station(a.name, "cmd", {"cmd": "cancel", "job_id": "hold-knife-01"})
        await planner.wait_event(jobs[0], "started", timeout=30)
        await planner.to_station(b.name, "cmd", {"cmd": "cancel", "job_id": "hold-knife-02"})
        for job_id in jobs:
            await planner.wait_event(job_id, "succeeded", timeout=90)
        starts = Counter(s for job_id in jobs for s in planner.started(job_id))
        assert all(len(planner.started(job_id)) == 1 for job_id in jobs)
        assert set(starts) == {a.name, b.name}  # both shared the work once free
        assert dispatcher.counts() == {"waiting": 0, "assigned": 0, "offers": 0}


async def test_malformed_pool_jobs_are_rejected_by_the_keeper_which_keeps_going(
        tmp_path: Path, broker: Broker) -> None:
    async with PoolPlanner(broker) as planner, running_keeper(keeper_config(tmp_path, broker)), \
            PoolStation(tmp_path, broker, "knife-01"):
        bad: list[bytes | dict[str, Any]] = [
            b"{not json", b"[1, 2]", {"kind": "gcode", "program": "G0 X1"},
            {"job_id": "bad kind", "kind": "gcode", "program": "G0"},
            {"job_id": "label-x", "kind": "embroidery", "program": "G0"},
        ]
        for payload in bad:
            await planner.to_pool(payload)
        await planner.wait_for(lambda: len(planner.pool_events) == len(bad), 20, "rejections")
        codes = [e["detail"]["error"]["code"] for e in planner.pool_events]
        assert codes == ["invalid_json", "invalid_json", "missing_field", "invalid_job",
                         "unsupported_kind"]
        assert all(e["event"] == "rejected" for e in planner.pool_events)
        await planner.to_pool(label_job("label-ok"))
        await planner.wait_event("label-ok", "succeeded", timeout=60)
        await planner.to_pool(label_job("label-ok"))  # the same job again: not run twice
        await planner.wait_for(lambda: len(planner.pool_events) == len(bad) + 1, 20)
        assert planner.pool_events[-1]["event"] == "duplicate"
        assert planner.started("label-ok") == ["knife-01"]


async def test_a_station_program_error_is_reported_by_the_station_that_took_it(
        tmp_path: Path, broker: Broker) -> None:
    async with PoolPlanner(broker) as planner, \
            running_keeper(keeper_config(tmp_path, broker)) as keeper, \
            PoolStation(tmp_path, broker, "knife-01"):
        # A settings write hidden in a job: blocked by the GRBL profile, never sent.
        await planner.to_pool({"job_id": "label-bad", "kind": "gcode",
                               "program": "G0 X10\n$110=20000\n"})
        rejected = await planner.wait_event("label-bad", "rejected")
        assert rejected["station"] == "knife-01"
        assert rejected["detail"]["error"]["code"] == "blocked_instruction"
        assert keeper.keeper is not None
        await planner.wait_for(lambda: keeper.keeper is not None and
                               keeper.keeper.dispatcher.counts()["assigned"] == 0, 20)
        await planner.to_pool(label_job("label-good"))
        await planner.wait_event("label-good", "succeeded", timeout=60)


async def test_pool_jobs_published_while_the_keeper_is_down_are_not_lost(
        tmp_path: Path, broker: Broker) -> None:
    config = keeper_config(tmp_path, broker)
    async with PoolPlanner(broker) as planner, PoolStation(tmp_path, broker, "knife-01"):
        async with running_keeper(config) as keeper:
            await planner.to_pool(label_job("before"))
            await planner.wait_event("before", "succeeded", timeout=60)
            await keeper.crash()
        for n in range(3):
            await planner.to_pool(label_job(f"while-down-{n}"))
        await asyncio.sleep(0.2)
        async with running_keeper(config):
            for n in range(3):
                await planner.wait_event(f"while-down-{n}", "succeeded", timeout=60)
        assert all(len(planner.started(f"while-down-{n}")) == 1 for n in range(3))


async def test_a_frozen_station_that_still_looks_idle_does_not_hold_a_pool_job(
        tmp_path: Path, broker: Broker) -> None:
    """SIGSTOP: its connection stays open and its retained status says idle, but it answers
    nothing. Its offer expires and the job goes to a station that answers."""
    frozen_link = tmp_path / "tty-frozen"
    config = agent_config(tmp_path, broker, frozen_link, station="knife-09", pools=[POOL])
    process = AgentProcess(write_config_file(tmp_path / "knife-09.toml", config),
                           tmp_path / "knife-09.log")
    keeper_cfg = keeper_config(tmp_path, broker, offer_timeout_s=1.0)
    async with PtyEndpoint(frozen_link, baud=115_200) as endpoint, \
            background(GrblEmulator(endpoint).run, "grbl-frozen"), \
            PoolPlanner(broker) as planner, running_keeper(keeper_cfg) as keeper:
        process.start()
        try:
            await planner.wait_status_of("knife-09", "idle")
            assert process.proc is not None
            process.proc.send_signal(signal.SIGSTOP)
            async with PoolStation(tmp_path, broker, "knife-01") as live:
                assert keeper.keeper is not None
                # Make the frozen station the keeper's first choice: it has waited longest.
                keeper.keeper.dispatcher.members[live.name].last_given = 1e9
                await planner.to_pool(label_job("front-9"))
                await planner.wait_event("front-9", "succeeded", timeout=60)
                assert planner.started("front-9") == [live.name]
                process.proc.send_signal(signal.SIGCONT)
                # Woken, it answers the stale offer; the keeper ignores the late claim.
                await planner.wait_for(lambda: any(r["station"] == "knife-09"
                                                   for r in planner.replies), 20)
                await planner.to_pool(label_job("front-10"))
                await planner.wait_event("front-10", "succeeded", timeout=60)
            assert planner.started("front-9") == [live.name]
        finally:
            if process.proc is not None:
                process.proc.send_signal(signal.SIGCONT)
            process.terminate()


async def test_a_keeper_crashing_again_and_again_loses_no_pool_job_and_runs_none_twice(
        tmp_path: Path, broker: Broker) -> None:
    config = keeper_config(tmp_path, broker)
    jobs = [f"sleeve-{n}" for n in range(12)]
    async with PoolPlanner(broker) as planner, \
            PoolStation(tmp_path, broker, "knife-01"), PoolStation(tmp_path, broker, "knife-02"), \
            PoolStation(tmp_path, broker, "knife-03"):
        for round_ in range(4):
            keeper = await RunningKeeper(config).start()
            for job_id in jobs[round_ * 3:(round_ + 1) * 3]:
                await planner.to_pool(label_job(job_id))
            # Crash somewhere in the offer, claim, assign, taken exchange.
            await asyncio.sleep(0.05 * round_)
            await keeper.crash()
        async with running_keeper(config):
            for job_id in jobs:
                await planner.wait_event(job_id, "succeeded", timeout=90)
        for job_id in jobs:
            assert len(planner.started(job_id)) == 1, job_id
