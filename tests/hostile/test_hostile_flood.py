"""A flood of 10,000 jobs in one burst: the queue stays bounded (``limits.max_queued_jobs``), the
excess is rejected with ``queue_full``, every job gets exactly one answer, and nothing accepted
is lost or cut twice. Real Mosquitto, a real pty, the whole agent in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agent.aio import wait_within
from agent.dialects.grbl import prepare_grbl_program
from agent.profiles import load_profile
from agent.profiles.grbl import GrblProfile
from tests.hostile.corpus import AnswerTally, care_label_job, care_label_program, encode
from tests.support.broker import Broker
from tests.support.planner import Planner
from tests.support.rig import grbl_rig
from tests.support.station import agent_config, running_agent

pytestmark = pytest.mark.timeout(240)

FLOOD = 10_000
QUEUE_LIMIT = 100
# Growth of this process's resident memory (agent, planner and emulator together) that a flood
# may cause: bounded, whatever the number of jobs, since the broker hands the agent at most
# its Receive Maximum of unacknowledged jobs and rejected ones leave nothing behind.
RSS_GROWTH_LIMIT_MIB = 150


def _flood_job(i: int) -> dict[str, Any]:
    """Job i: a care label at its own place on the bed, so every job's lines are unique."""
    x0, y0 = 10 + (i % 100) * 15, 10 + (i // 100) * 9
    return care_label_job(f"SO-1042-label-{i:05d}", care_label_program(x0, y0))


def _reset_peak_rss() -> str:
    """Restart VmHWM from the current RSS (Linux: clear_refs 5), so the peak is this test's and
    not an earlier test's in the same process; where that is not allowed, use VmRSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return "VmRSS"
    return "VmHWM"


def _rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc/self/status")


async def _flood(planner: Planner, payloads: list[bytes]) -> None:
    """Every job as fast as the broker takes them, in order (QoS 1)."""
    assert planner.conn is not None
    topic = planner.topic("job")
    futures = [planner.conn.publish_nowait(topic, p, qos=1) for p in payloads]
    await wait_within(asyncio.gather(*futures), 180)


ANSWERS = frozenset({"accepted", "rejected", "duplicate"})


def _answers(planner: Planner) -> list[dict[str, Any]]:
    return [e for e in planner.events if e["event"] in ANSWERS]


async def _wait_answers(planner: Planner, n: int, timeout: float) -> None:
    tally = AnswerTally(planner.events, ANSWERS)
    await planner.wait_for(lambda: tally() >= n, timeout, f"{n} answers")


async def test_flood_without_a_machine_fills_the_queue_and_rejects_the_rest(
    tmp_path: Path, broker: Broker
) -> None:
    payloads = [encode(_flood_job(i)) for i in range(FLOOD)]
    ids = [f"SO-1042-label-{i:05d}" for i in range(FLOOD)]
    config = agent_config(tmp_path, broker, tmp_path / "no-such-tty",
                          limits={"max_queued_jobs": QUEUE_LIMIT})
    peak_field = _reset_peak_rss()
    rss_before = _rss_mib("VmRSS")
    async with Planner(broker.host, broker.port) as planner, running_agent(config) as agent:
        await agent.wait_broker()
        await _flood(planner, payloads)
        await _wait_answers(planner, FLOOD, 180)
        rss_peak = _rss_mib(peak_field)
        answers = _answers(planner)
        assert len(answers) == FLOOD
        # In arrival order: the first QUEUE_LIMIT are queued, every later one is queue_full.
        assert [e["job_id"] for e in answers] == ids
        assert [e["event"] for e in answers] == (["accepted"] * QUEUE_LIMIT
                                                 + ["rejected"] * (FLOOD - QUEUE_LIMIT))
        assert {e["detail"]["error"]["code"] for e in answers[QUEUE_LIMIT:]} == {"queue_full"}
        assert [e["detail"]["queue_position"] for e in answers[:QUEUE_LIMIT]] == list(
            range(QUEUE_LIMIT))
        assert agent.agent is not None
        station = agent.agent.station
        # Exactly the accepted jobs are stored; a rejected one leaves nothing behind.
        assert [r.job_id for r in station.store.queued()] == ids[:QUEUE_LIMIT]
        assert agent.agent.db.conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == (
            QUEUE_LIMIT)
        # The station is still answering: a duplicate of a queued job, a new job still full.
        await planner.submit(_flood_job(0))
        await planner.submit(_flood_job(FLOOD))
        await _wait_answers(planner, FLOOD + 2, 30)
        tail = _answers(planner)[FLOOD:]
        assert [(e["event"], e["job_id"]) for e in tail] == [
            ("duplicate", ids[0]), ("rejected", f"SO-1042-label-{FLOOD:05d}")]
        assert tail[1]["detail"]["error"]["code"] == "queue_full"
        # Every event reached the planner once, in seq order, and the outbox drained.
        seqs = [e["seq"] for e in planner.events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        await planner.wait_for(lambda: agent.agent is not None
                               and agent.agent.reporter.outbox.count == 0, 30, "outbox empty")
    print(f"\nflood without a machine: peak RSS {rss_peak:.1f} MiB "
          f"(+{rss_peak - rss_before:.1f} MiB)")
    assert rss_peak - rss_before < RSS_GROWTH_LIMIT_MIB


def _grbl_lines(program: str) -> list[str]:
    profile = load_profile("grbl-1.1")
    assert isinstance(profile, GrblProfile)
    return list(prepare_grbl_program(program, profile).lines)


async def test_flood_while_cutting_loses_nothing_and_cuts_nothing_twice(
    tmp_path: Path, broker: Broker
) -> None:
    jobs = [_flood_job(i) for i in range(FLOOD)]
    payloads = [encode(j) for j in jobs]
    # As fast as the pty goes, so jobs run and free queue places while the flood arrives.
    async with grbl_rig(tmp_path, broker, baud=None,
                        config={"limits": {"max_queued_jobs": QUEUE_LIMIT}}) as rig:
        emulator, planner = rig.emulator, rig.planner
        await _flood(planner, payloads)
        await _wait_answers(planner, FLOOD, 180)
        answers = _answers(planner)
        assert [e["job_id"] for e in answers] == [j["job_id"] for j in jobs]
        accepted = [e["job_id"] for e in answers if e["event"] == "accepted"]
        rejected = [e for e in answers if e["event"] == "rejected"]
        assert {e["detail"]["error"]["code"] for e in rejected} == {"queue_full"}
        assert len(accepted) + len(rejected) == FLOOD
        assert QUEUE_LIMIT <= len(accepted) < FLOOD
        # Every accepted job is cut to the end.
        ends: dict[str, str] = {}
        ended = AnswerTally(planner.events, frozenset(
            {"succeeded", "failed", "canceled", "interrupted"}))
        await planner.wait_for(lambda: ended() >= len(accepted), 180,
                               "every accepted job to end")
        for e in planner.events:
            if e["event"] in ended.kinds:
                assert e["job_id"] not in ends, e
                ends[e["job_id"]] = e["event"]
        assert ends == dict.fromkeys(accepted, "succeeded")
        started = [e["job_id"] for e in planner.events if e["event"] == "started"]
        assert started == accepted
        await planner.wait_status("idle")
    # The machine cut each accepted label once, in order, each followed by the agent's fence;
    # nothing of a rejected job reached it.
    by_id = {j["job_id"]: j["program"] for j in jobs}
    expected: list[str] = []
    for job_id in accepted:
        expected += [*_grbl_lines(by_id[job_id]), "G4P0"]
    assert emulator.executed == expected
    assert emulator.overflow_bytes == 0
    print(f"\nflood while cutting: {len(accepted)} accepted and cut, {len(rejected)} queue_full")
