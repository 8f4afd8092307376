from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.dialects.program import Program
from agent.jobs.states import TRANSITIONS, JobState, TransitionError, Trigger, next_state
from agent.jobs.store import JobStore
from agent.link.outbox import Outbox, RowKind
from agent.schemas.event import EventType
from agent.storage import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "agent.db")
    yield database
    database.close()


def test_state_table_terminal_states_have_no_exit() -> None:
    for state, _ in TRANSITIONS:
        assert state not in {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED,
                             JobState.INTERRUPTED}
    with pytest.raises(TransitionError):
        next_state(JobState.SUCCEEDED, Trigger.START)
    with pytest.raises(TransitionError):
        next_state(JobState.QUEUED, Trigger.PAUSE)
    assert next_state(JobState.RUNNING, Trigger.PAUSE) is JobState.PAUSED


def test_seq_is_consecutive_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    db = Database(path)
    box = Outbox(db, "cutter-01", max_bytes=1 << 20)
    seqs = [box.add_event("mf/cutter-01/events", EventType.ACCEPTED, f"j{i}").seq for i in range(5)]
    db.close()
    db = Database(path)
    box = Outbox(db, "cutter-01", max_bytes=1 << 20)
    seqs.append(box.add_event("mf/cutter-01/events", EventType.STARTED, "j0").seq)
    assert seqs == [1, 2, 3, 4, 5, 6]
    rows = box.pending(100)
    assert [r.seq for r in rows] == seqs
    db.close()


def test_event_rolled_back_with_its_transaction_does_not_burn_a_seq(db: Database) -> None:
    box = Outbox(db, "cutter-01", max_bytes=1 << 20)
    box.add_event("t", EventType.ACCEPTED, "a")
    def add_then_fail() -> None:
        with db.transaction():
            box.add_event("t", EventType.ACCEPTED, "b")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        add_then_fail()
    assert box.add_event("t", EventType.ACCEPTED, "c").seq == 2


def test_retained_status_supersedes_unpublished(db: Database) -> None:
    box = Outbox(db, "cutter-01", max_bytes=1 << 20)
    box.add_retained(RowKind.STATUS, "mf/cutter-01/status", b'{"state":"busy"}')
    box.add_retained(RowKind.STATUS, "mf/cutter-01/status", b'{"state":"idle"}')
    rows = box.pending(10)
    assert [r.payload for r in rows] == [b'{"state":"idle"}']
    assert rows[0].retain


def test_cap_drops_telemetry_first_never_lifecycle(db: Database) -> None:
    box = Outbox(db, "cutter-01", max_bytes=64 * 1024)
    for i in range(20):
        box.add_event("mf/cutter-01/events", EventType.ACCEPTED, f"job-{i}")
    for i in range(5000):
        box.add_telemetry("mf/cutter-01/telemetry", json.dumps({"i": i, "pad": "x" * 80}).encode())
    report = box.take_pressure_report()
    assert report is not None and report["telemetry"] > 0
    lifecycle = [r for r in box.pending(100_000) if r.kind is RowKind.EVENT]
    assert [r.seq for r in lifecycle] == list(range(1, 21))
    assert box.size <= 64 * 1024
    # lifecycle events still go in when only lifecycle is left: the cap is exceeded, not them
    small = Outbox(db, "cutter-01", max_bytes=64 * 1024)
    for i in range(2000):
        small.add_event("mf/cutter-01/events", EventType.SUCCEEDED, f"x-{i}")
    assert len([r for r in small.pending(100_000) if r.kind is RowKind.EVENT]) == 2020


def test_job_store_order_and_transitions(db: Database) -> None:
    store = JobStore(db)
    prog = Program(("G21", "G0X10Y10"), (1, 3))
    store.add("front", "gcode", "{}", prog)
    store.add("back", "gcode", "{}", prog)
    assert [r.job_id for r in store.queued()] == ["front", "back"]
    store.transition("front", Trigger.START)
    assert [r.job_id for r in store.active()] == ["front"]
    rec = store.transition("front", Trigger.INTERRUPT, lines_done=1)
    assert rec.state is JobState.INTERRUPTED and rec.lines_done == 1
    assert store.program("back") == prog
    with pytest.raises(TransitionError):
        store.transition("front", Trigger.START)
