"""Never lose a job or an event: broker restarts, agent kills, offline queues, duplicates."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agent.emulators.grbl import GrblEmulator
from agent.emulators.pty import PtyEndpoint
from agent.garments import knife_gcode, tshirt_pieces
from agent.link.topics import TopicName
from tests.support.broker import Broker
from tests.support.eventually import eventually
from tests.support.planner import Planner
from tests.support.rig import grbl_rig
from tests.support.station import (
    AgentProcess,
    agent_config,
    background,
    running_agent,
    write_config_file,
)
from tests.support.subscriber import PersistentSubscriber

pytestmark = pytest.mark.timeout(240)


def _program(feed: int = 30_000) -> str:
    return knife_gcode(tshirt_pieces(), feed_mm_min=feed)


async def test_broker_killed_mid_job_no_event_lost(tmp_path: Path, broker: Broker) -> None:
    link = tmp_path / "ttyGRBL"
    async with PtyEndpoint(link, baud=115_200, latency_s=0.001) as endpoint:
        emulator = GrblEmulator(endpoint, motion=True)
        async with background(emulator.run, "grbl") as grbl, PersistentSubscriber(
            broker.host, broker.port, "mf/cutter-01/events", "planner-durable"
        ) as sub, running_agent(agent_config(tmp_path, broker, link)) as agent:
            await agent.wait_device_online()
            async with Planner(broker.host, broker.port) as planner:
                await planner.submit({"job_id": "front-9", "kind": "gcode",
                                      "program": _program()})
                await planner.wait_event("front-9", "started")
            await eventually(lambda: len(emulator.executed) > 50, what="cutting", watch=[grbl])
            broker.stop(kill=True)
            # The machine keeps cutting while the broker is gone, and the agent notices.
            done_before = len(emulator.executed)
            await eventually(lambda: len(emulator.executed) > done_before + 20,
                             what="cutting on without the broker", watch=[grbl])
            station = agent.agent
            assert station is not None
            # An outage, not a blip: the agent knows the broker is gone and holds what it
            # says meanwhile in its outbox.
            await eventually(lambda: not station.link.connected.is_set()
                             and station.link.outbox.pending(1),
                             what="the agent offline with messages queued", watch=[grbl])
            broker.start()
            await eventually(lambda: any(e["event"] == "succeeded" for e in sub.received),
                             what="succeeded, after the broker's return", timeout=120,
                             watch=[grbl])
    seqs = sub.unique_seqs()
    assert seqs == list(range(1, len(seqs) + 1)), "a gap or reordering in the event stream"
    names = [e["event"] for e in sub.received if e["job_id"] == "front-9"]
    assert names[0] == "accepted" and "succeeded" in names
    assert agent.agent is not None and agent.agent.link.stats.connects >= 2


async def test_agent_killed_mid_job_is_interrupted_not_rerun(tmp_path: Path,
                                                            broker: Broker) -> None:
    program = _program(feed=20_000)
    async with grbl_rig(tmp_path, broker, latency_s=0.001, motion=True,
                        start_agent=False) as rig:
        emulator, planner = rig.emulator, rig.planner
        # The agent runs as a child process here, to be killed with -9.
        config_path = write_config_file(tmp_path / "agent.toml", rig.config)
        proc = AgentProcess(config_path, tmp_path / "agent.log")
        async with PersistentSubscriber(broker.host, broker.port, "mf/cutter-01/events",
                                        "planner-kill") as sub:
            proc.start()
            try:
                await planner.wait_status("idle", timeout=30)
                await planner.submit({"job_id": "front-10", "kind": "gcode", "program": program})
                await planner.submit({"job_id": "label-10", "kind": "gcode",
                                      "program": "G21 G90\nG0 X30 Y900\nG1 X70 Y900 F1200\n"})
                await planner.wait_event("label-10", "accepted")
                await rig.eventually(lambda: len(emulator.executed) > 60, "cutting", 60)
                before_kill = [e["seq"] for e in planner.events]
                proc.kill()
                # Killing the agent leaves the retained offline status (its Last Will).
                await planner.wait_status("offline", timeout=20)
                executed_at_kill = len(emulator.executed)
                proc.start()
                interrupted = await planner.wait_event("front-10", "interrupted", timeout=60)
                assert await_ok(await planner.wait_terminal("label-10", timeout=60))
            finally:
                proc.terminate()
    last = interrupted["detail"]["last_line_acknowledged"]
    assert 0 < last <= interrupted["detail"]["lines_total"]
    assert last <= executed_at_kill + 20
    # The interrupted job was never re-run: its first cut appears once in the machine's record.
    first_cut = "G1Z-1F600"
    label_lines = ["G21G90", "G0X30Y900", "G1X70Y900F1200", "G4P0"]
    assert emulator.executed[-4:] == label_lines
    assert emulator.executed[:-4].count("G21G90G94") == 1
    assert emulator.executed.count(first_cut) <= 4
    # Every event emitted before the kill was delivered, and seq continued without a gap.
    seqs = sub.unique_seqs()
    assert set(before_kill) <= set(seqs)
    assert seqs == list(range(1, len(seqs) + 1))


def await_ok(event: dict[str, object]) -> bool:
    return event["event"] == "succeeded"


async def test_job_published_while_agent_down_runs_when_it_starts(tmp_path: Path,
                                                                 broker: Broker) -> None:
    async with grbl_rig(tmp_path, broker, start_agent=False) as rig:
        emulator, planner = rig.emulator, rig.planner
        async with running_agent(rig.config) as agent:
            await agent.wait_broker()  # the station's persistent session now exists
        await planner.wait_status("offline")
        await planner.submit({"job_id": "sleeve-3", "kind": "gcode",
                              "program": "G21 G90\nG0 X1100 Y20\nG1 X1570 Y20 F3000\n"})
        await rig.start_agent()
        end = await planner.wait_terminal("sleeve-3", timeout=30)
    assert end["event"] == "succeeded"
    assert emulator.executed == ["G21G90", "G0X1100Y20", "G1X1570Y20F3000", "G4P0"]


async def test_500_submissions_of_100_ids_run_100_jobs(tmp_path: Path, broker: Broker) -> None:
    async with grbl_rig(tmp_path, broker, baud=None) as rig:
        emulator, planner = rig.emulator, rig.planner
        for round_ in range(5):
            for i in range(100):
                await planner.submit({
                    "job_id": f"SO-2001-label-{i:03d}", "kind": "gcode",
                    "program": f"G21 G90\nG0 X{10 + i} Y{10 + round_ * 0}\nG1 X{50 + i} "
                               f"Y10 F1500\n",
                })
        await planner.wait_for(
            lambda: sum(e["event"] == "succeeded" for e in planner.events) == 100, 120,
            "100 jobs done")
        await planner.wait_for(
            lambda: sum(e["event"] in ("accepted", "duplicate") for e in planner.events)
            == 500, 60, "every submission answered")
    succeeded = {e["job_id"] for e in planner.events if e["event"] == "succeeded"}
    assert len(succeeded) == 100
    assert sum(e["event"] == "accepted" for e in planner.events) == 100
    assert sum(e["event"] == "duplicate" for e in planner.events) == 400
    # The machine's record: each job's cut exactly once.
    cuts = [line for line in emulator.executed if line.startswith("G1X")]
    assert len(cuts) == 100 and len(set(cuts)) == 100


async def test_telemetry_flood_during_outage_keeps_lifecycle_events(tmp_path: Path,
                                                                   broker: Broker) -> None:
    link = tmp_path / "ttyGRBL"
    cap = 256 * 1024
    config = agent_config(tmp_path, broker, link, storage={"outbox_max_bytes": cap})
    async with PtyEndpoint(link, baud=None) as endpoint:
        emulator = GrblEmulator(endpoint)
        async with background(emulator.run, "grbl") as grbl, running_agent(config) as running, \
                PersistentSubscriber(broker.host, broker.port, "mf/cutter-01/events",
                                     "planner-flood") as sub:
            await running.wait_device_online()
            agent = running.agent
            assert agent is not None
            await running.wait_broker()
            broker.stop()
            await eventually(lambda: not agent.link.connected.is_set(),
                             what="the agent to see the broker gone", watch=[grbl])
            # Jobs reach the station while the broker is away (as if delivered just before the
            # outage); their lifecycle must survive a flood of telemetry in the outbox.
            for i in range(3):
                await agent.station.handle(TopicName.JOB, json.dumps({
                    "job_id": f"back-{i}", "kind": "gcode",
                    "program": "G21\nG0 X5 Y5\nG1 X20 Y5 F900\n"}).encode())
            for i in range(100_000):
                if i % 500 == 0:
                    await asyncio.sleep(0)  # samples arrive over time; the machine keeps running
                agent.reporter.telemetry({"state": "Run", "position_mm": [i * 0.01, 5.0, 0.0],
                                          "feed_mm_min": 900.0})
            await eventually(lambda: sum(1 for r in agent.link.outbox.pending(100_000)
                                         if b'"succeeded"' in r.payload) == 3,
                             what="three succeeded events queued", timeout=60, watch=[grbl])
            assert agent.link.outbox.size <= cap
            broker.start()
            await eventually(lambda: sum(e["event"] == "succeeded" for e in sub.received) == 3,
                             what="three succeeded events delivered", timeout=60, watch=[grbl])
    names = [(e["job_id"], e["event"]) for e in sub.received if e["event"] != "progress"]
    for i in range(3):
        job = f"back-{i}"
        assert [n for j, n in names if j == job] == ["accepted", "started", "succeeded"]
    pressure = [e for e in sub.received if e["event"] == "storage_pressure"]
    assert pressure and pressure[0]["detail"]["dropped"]["telemetry"] > 0
    seqs = sub.unique_seqs()
    assert seqs == list(range(1, len(seqs) + 1))


async def test_a_clean_stop_leaves_offline_retained_even_right_after_connecting(
        tmp_path: Path, broker: Broker) -> None:
    """The goodbye goes through the outbox behind any status still queued there, so an older
    status can never be published after it and stay retained while the station is gone."""
    async with grbl_rig(tmp_path, broker, start_agent=False) as rig:
        for round_ in range(6):
            # Started and stopped here, not by the rig: the even rounds stop before the
            # machine is even online.
            async with running_agent(rig.config) as agent:
                await agent.wait_broker()
                if round_ % 2:
                    await agent.wait_device_online()
            async with Planner(broker.host, broker.port) as fresh:
                await fresh.wait_for(lambda: fresh.statuses, 10, "the retained status")
                assert [s["state"] for s in fresh.statuses] == ["offline"], round_
