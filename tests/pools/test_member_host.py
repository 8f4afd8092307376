"""A pool member against a small stand-in station (no Station, no broker), and the pool stores
against real SQLite files.

The stand-in implements :class:`agent.pools.host.PoolHost` and nothing else, so these tests also
show that the member needs no more of its station than that protocol names.
"""

from __future__ import annotations

import ast
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.jobs.intake import AcceptedJob, Rejection, parse_job
from agent.pools.host import PoolHost
from agent.pools.member import PoolMember
from agent.pools.store import (
    KEEPER_SCHEMA,
    AnsweredAssignments,
    PoolJobState,
    PoolJobStore,
    SeenJob,
    StoredAnswer,
)
from agent.profiles import load_profile
from agent.schemas.event import EventType
from agent.schemas.pool import Answer, PoolReply
from agent.schemas.status import StationState
from agent.storage import Database, StorageError

POOL = "knife-cutters"
STATION = "knife-01"
PROFILE = load_profile("grbl-knife")
POOLS_DIR = Path(__file__).parents[2] / "agent" / "pools"


def _job(job_id: str, program: str = "G0 X10 Y10\nG1 X20 F600\n") -> dict[str, Any]:
    return {"job_id": job_id, "kind": "gcode", "program": program}


def _assignment(token: str, job: dict[str, Any], pool: str = POOL) -> bytes:
    return json.dumps({"v": 1, "pool": pool, "assignment": token, "job": job}).encode()


def _offer(token: str, job_id: str, kind: str = "gcode", pool: str = POOL) -> bytes:
    return json.dumps({"v": 1, "pool": pool, "job_id": job_id, "kind": kind,
                       "offer": token}).encode()


@dataclass
class Reporter:
    events: list[tuple[EventType, str | None, dict[str, Any]]] = field(default_factory=list)
    replies: list[tuple[PoolReply, bool]] = field(default_factory=list)
    fail_durable: bool = False  # the outbox's disk is full

    def event(self, event: EventType, job_id: str | None,
              detail: dict[str, Any] | None = None) -> object:
        self.events.append((event, job_id, detail or {}))
        return None

    def pool_reply(self, reply: PoolReply, *, durable: bool) -> None:
        if durable and self.fail_durable:
            raise StorageError("database or disk is full", reason="disk_full")
        self.replies.append((reply, durable))

    def answers(self) -> list[tuple[str, Answer, str | None, bool]]:
        return [(r.token, r.answer, r.reason, durable) for r, durable in self.replies]


@dataclass
class Runner:
    current: object | None = None
    notified: int = 0

    def notify_queue(self) -> None:
        self.notified += 1


@dataclass
class HeldJobs:
    db: Database
    jobs: dict[str, tuple[AcceptedJob, str | None]] = field(default_factory=dict)

    def get(self, job_id: str) -> object | None:
        return self.jobs.get(job_id)

    def count_waiting(self) -> int:
        return len(self.jobs)

    def add(self, job: AcceptedJob, pool: str | None) -> None:
        job_id = job.request.job_id
        self.jobs[job_id] = (job, pool)
        # As the real store's row would be, the job is gone if the transaction rolls back.
        self.db.on_rollback(lambda: self.jobs.pop(job_id, None))


@dataclass
class StandInStation:
    """Just what a pool member may use of a station (agent.pools.host.PoolHost)."""

    store: HeldJobs
    runner: Runner = field(default_factory=Runner)
    reporter: Reporter = field(default_factory=Reporter)
    job_kinds: list[str] = field(default_factory=lambda: ["gcode", "toolpaths"])
    state: StationState = StationState.IDLE
    blocker: str | None = None
    rejected: list[Rejection] = field(default_factory=list)
    checked: list[tuple[str | None, bool]] = field(default_factory=list)  # (pool, on the loop?)
    loop_thread: int = field(default_factory=threading.get_ident)
    # Something that happens while a job is being checked (a door opens...).
    during_check: Any = None

    def derive_state(self) -> tuple[StationState, str | None]:
        return self.state, None

    def start_blocker(self) -> str | None:
        return self.blocker

    def validate_job(self, payload: bytes, *, pool: str | None = None) -> AcceptedJob | Rejection:
        self.checked.append((pool, threading.get_ident() == self.loop_thread))
        if self.during_check is not None:
            self.during_check()
        return parse_job(payload, PROFILE, max_bytes=1 << 20, max_lines=10_000)

    def reject(self, rejection: Rejection) -> None:
        self.rejected.append(rejection)

    def store_job(self, job: AcceptedJob, *, waiting: int = 0, pool: str | None = None) -> None:
        assert self.store.db.in_transaction, "a pool job is stored in the answer's transaction"
        self.store.add(job, pool)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "agent.db")


def _member(db: Database) -> tuple[PoolMember, StandInStation]:
    host = StandInStation(HeldJobs(db))
    typed: PoolHost = host  # what mypy checks for the real Station in agent/station.py
    return PoolMember(typed, AnsweredAssignments(db), station_id=STATION, pools=[POOL]), host


# -- offers ------------------------------------------------------------------------------------


def test_an_offer_is_claimed_only_when_the_station_could_start_it_now(db: Database) -> None:
    member, host = _member(db)
    member.on_offer(_offer("1-1", "front-1"))
    member.on_offer(_offer("1-2", "marker-1", kind="hpgl"))
    member.on_offer(_offer("1-3", "front-2", pool="lasers"))
    host.blocker = "door_open"
    member.on_offer(_offer("1-4", "front-3"))
    host.blocker, host.state = None, StationState.PAUSED
    member.on_offer(_offer("1-5", "front-4"))
    host.state, host.runner.current = StationState.IDLE, object()
    member.on_offer(_offer("1-6", "front-5"))
    host.runner.current = None
    member.on_offer(b'{"v": 1, "pool": "knife-cutters"}')  # the keeper's bug: ignored
    assert host.reporter.answers() == [
        ("1-1", Answer.CLAIM, None, False), ("1-2", Answer.DECLINE, "kind_not_supported", False),
        ("1-3", Answer.DECLINE, "not_a_member", False),
        ("1-4", Answer.DECLINE, "door_open", False), ("1-5", Answer.DECLINE, "paused", False),
        ("1-6", Answer.DECLINE, "busy", False)]
    assert all(r.station == STATION for r, _ in host.reporter.replies)
    # Offers are forgettable: nothing of them is stored.
    assert db.conn.execute("SELECT COUNT(*) FROM pool_assignments").fetchone()[0] == 0


# -- assignments -------------------------------------------------------------------------------


async def test_an_assignment_is_taken_once_and_answered_again_when_delivered_again(
        db: Database) -> None:
    member, host = _member(db)
    await member.on_assignment(_assignment("1-7", _job("back-1")))
    assert list(host.store.jobs) == ["back-1"]
    assert host.store.jobs["back-1"][1] == POOL
    assert host.checked == [(POOL, False)], "checked off the event loop, for its pool"
    assert host.runner.notified == 1
    assert host.reporter.answers() == [("1-7", Answer.TAKEN, None, True)]
    assert AnsweredAssignments(db).answer_to("1-7") == StoredAnswer(Answer.TAKEN, None)

    # A broker redelivery: the same answer, not checked, stored or started again.
    await member.on_assignment(_assignment("1-7", _job("back-1")))
    assert host.reporter.answers()[1] == ("1-7", Answer.TAKEN, None, True)
    assert len(host.checked) == 1 and host.runner.notified == 1


async def test_a_handed_back_job_never_runs_from_a_stale_delivery(db: Database) -> None:
    member, host = _member(db)
    host.blocker = "estop"
    await member.on_assignment(_assignment("2-1", _job("back-2")))
    host.blocker = None
    await member.on_assignment(_assignment("2-1", _job("back-2")))
    assert host.reporter.answers() == [("2-1", Answer.HANDBACK, "estop", True)] * 2
    assert host.store.jobs == {} and host.checked == []
    # Not a member of the pool it came from: handed back too.
    await member.on_assignment(_assignment("2-2", _job("back-3"), pool="lasers"))
    assert host.reporter.answers()[2] == ("2-2", Answer.HANDBACK, "not_a_member", True)


async def test_a_station_that_became_busy_while_checking_hands_the_job_back(
        db: Database) -> None:
    member, host = _member(db)

    def door_opens() -> None:
        host.blocker = "door_open"

    host.during_check = door_opens
    await member.on_assignment(_assignment("3-1", _job("back-4")))
    assert host.reporter.answers() == [("3-1", Answer.HANDBACK, "door_open", True)]
    assert host.store.jobs == {} and host.runner.notified == 0


async def test_a_bad_job_is_rejected_to_the_planner_and_answered_rejected(db: Database) -> None:
    member, host = _member(db)
    await member.on_assignment(_assignment("4-1", _job("reset-1", "G0 X10\n$RST=*\n")))
    [rejection] = host.rejected
    assert rejection.job_id == "reset-1"
    assert host.reporter.answers() == [("4-1", Answer.REJECTED, rejection.code, True)]
    assert AnsweredAssignments(db).answer_to("4-1") == StoredAnswer(Answer.REJECTED,
                                                                    rejection.code)
    assert host.store.jobs == {}


async def test_a_job_already_here_runs_once_here(db: Database) -> None:
    member, host = _member(db)
    await member.on_assignment(_assignment("5-1", _job("front-9")))
    # The keeper (after a handback it never got, say) assigns the same job again.
    await member.on_assignment(_assignment("5-2", _job("front-9")))
    assert host.reporter.answers()[1] == ("5-2", Answer.TAKEN, "duplicate", True)
    assert host.reporter.events == [(EventType.DUPLICATE, "front-9", {"pool": POOL})]
    assert len(host.store.jobs) == 1 and len(host.checked) == 1


async def test_an_answer_that_cannot_be_queued_leaves_no_job_and_no_answer(
        db: Database) -> None:
    member, host = _member(db)
    host.reporter.fail_durable = True
    with pytest.raises(StorageError):
        await member.on_assignment(_assignment("6-1", _job("front-10")))
    assert host.store.jobs == {}
    assert AnsweredAssignments(db).answer_to("6-1") is None
    # Not acknowledged, so the broker delivers it again: handled afresh once the disk works.
    host.reporter.fail_durable = False
    await member.on_assignment(_assignment("6-1", _job("front-10")))
    assert list(host.store.jobs) == ["front-10"]
    assert host.reporter.answers() == [("6-1", Answer.TAKEN, None, True)]


async def test_a_malformed_assignment_is_ignored(db: Database) -> None:
    member, host = _member(db)
    await member.on_assignment(b'{"v": 1, "pool": "knife-cutters", "job": {}}')
    assert host.reporter.replies == [] and host.checked == []


# -- the stores, on real files -----------------------------------------------------------------


def test_answered_assignments_outlive_a_restart(tmp_path: Path) -> None:
    db = Database(tmp_path / "agent.db")
    AnsweredAssignments(db).record("7-1", POOL, "front-11", Answer.HANDBACK, "busy")
    db.close()
    again = AnsweredAssignments(Database(tmp_path / "agent.db"))
    assert again.answer_to("7-1") == StoredAnswer(Answer.HANDBACK, "busy")
    assert again.answer_to("7-2") is None


def test_the_keeper_store_keeps_order_assignments_and_answers_across_a_restart(
        tmp_path: Path) -> None:
    path = tmp_path / "keeper.db"
    store = PoolJobStore(Database(path, extra_schema=KEEPER_SCHEMA))
    first = store.add("front-1", POOL, "gcode", b'{"job_id": "front-1"}')
    second = store.add("front-2", POOL, "gcode", b'{"job_id": "front-2"}')
    store.add("front-3", POOL, "hpgl", b'{"job_id": "front-3"}')
    assert (first.arrival, second.arrival, second.state) == (1, 2, PoolJobState.WAITING)
    store.assign("front-1", "knife-01", "a" * 32)
    store.settle("front-1", PoolJobState.DONE, "knife-01", "a" * 32, Answer.TAKEN)
    store.assign("front-2", "knife-02", "b" * 32)
    store.assign("front-3", "knife-01", "c" * 32)
    store.settle("front-3", PoolJobState.WAITING, None, None, Answer.HANDBACK)
    store.db.close()

    again = PoolJobStore(Database(path, extra_schema=KEEPER_SCHEMA))
    assert [(j.job_id, j.arrival, j.state, j.station, j.token, j.kind)
            for j in again.open_jobs()] == [
        ("front-2", 2, PoolJobState.ASSIGNED, "knife-02", "b" * 32, "gcode"),
        ("front-3", 3, PoolJobState.WAITING, None, None, "hpgl")]
    assert again.open_jobs()[0].payload == b'{"job_id": "front-2"}'
    assert again.seen("front-1") == SeenJob("done", "knife-01", "taken")
    assert again.seen("front-3") == SeenJob("waiting", None, "handback")
    assert again.seen("front-4") is None
    # Numbering goes on after the restart; a job_id is never stored twice.
    assert again.add("front-4", POOL, "gcode", b"{}").arrival == 4
    with pytest.raises(Exception, match="UNIQUE"):
        again.add("front-1", POOL, "gcode", b"{}")
    assert again.db.counter("pool_arrival") == 4, "the failed add took no number"


# -- the package keeps to its room -------------------------------------------------------------


def test_the_pools_package_imports_no_station_and_runs_sql_only_in_its_store() -> None:
    for source in sorted(POOLS_DIR.glob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for a in node.names}
        assert "agent.station" not in imported, source.name
        calls = [node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and isinstance(node.func, ast.Attribute)]
        if source.name != "store.py":
            assert not {"execute", "executemany", "executescript"} & set(calls), source.name
