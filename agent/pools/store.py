"""Every row pool dispatch keeps, and the only SQL it runs: a station's answered assignments
(in ``agent.db``) and the keeper's pool jobs (in ``keeper.db``).

Each write here is one transaction, or joins the caller's when one is open
(:meth:`agent.storage.Database.transaction`): a station's answer commits together with the job
it took and the reply queued in its outbox.
"""

from __future__ import annotations

import enum
from contextlib import AbstractContextManager
from dataclasses import dataclass
from sqlite3 import Connection
from typing import NamedTuple

from agent.schemas.pool import Answer
from agent.storage import Database

# The keeper's table; the station's ``pool_assignments`` is in agent.storage.SCHEMA, with the
# rest of agent.db (agent.migrations numbers the versions of both files).
KEEPER_SCHEMA = """
CREATE TABLE IF NOT EXISTS pool_jobs (
    job_id TEXT PRIMARY KEY,
    arrival INTEGER NOT NULL UNIQUE,
    pool TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    state TEXT NOT NULL,
    station TEXT,
    token TEXT,
    answer TEXT
);
CREATE INDEX IF NOT EXISTS pool_jobs_by_state ON pool_jobs (state, arrival);
"""


# -- the station's side ------------------------------------------------------------------------


class StoredAnswer(NamedTuple):
    answer: Answer
    reason: str | None


class AnsweredAssignments:
    """The assignments this station has answered, by token: the same assignment delivered
    again gets the same answer, and a job handed back is never run from a stale delivery."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def transaction(self) -> AbstractContextManager[Connection]:
        """The station database's transaction: a job stored inside it commits with the answer."""
        return self.db.transaction()

    def answer_to(self, token: str) -> StoredAnswer | None:
        row = self.db.conn.execute(
            "SELECT answer, reason FROM pool_assignments WHERE token = ?", (token,)).fetchone()
        return None if row is None else StoredAnswer(Answer(row[0]), row[1])

    def record(self, token: str, pool: str, job_id: str, answer: Answer,
               reason: str | None) -> None:
        with self.db.transaction():
            self.db.conn.execute(
                "INSERT INTO pool_assignments (token, pool, job_id, answer, reason) "
                "VALUES (?, ?, ?, ?, ?)", (token, pool, job_id, answer.value, reason))


# -- the keeper's side -------------------------------------------------------------------------


class PoolJobState(enum.StrEnum):
    WAITING = "waiting"
    ASSIGNED = "assigned"
    DONE = "done"


@dataclass
class PoolJob:
    job_id: str
    arrival: int
    pool: str
    kind: str
    payload: bytes
    state: PoolJobState
    station: str | None = None
    token: str | None = None  # the assignment's while assigned


class SeenJob(NamedTuple):
    """Where a job_id the keeper has stored before stands (``answer``: the last station's)."""

    state: str
    station: str | None
    answer: str | None


class PoolJobStore:
    """The keeper's pool jobs: stored before the broker's delivery is acknowledged, kept until
    a station has one (state ``done`` rows stay, so a job_id is never taken twice)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def open_jobs(self) -> list[PoolJob]:
        """Waiting and assigned jobs, oldest first."""
        rows = self.db.conn.execute(
            "SELECT job_id, arrival, pool, kind, payload, state, station, token FROM pool_jobs "
            "WHERE state != ? ORDER BY arrival", (PoolJobState.DONE.value,)
        ).fetchall()
        return [PoolJob(r[0], r[1], r[2], r[3], bytes(r[4]), PoolJobState(r[5]), r[6], r[7])
                for r in rows]

    def seen(self, job_id: str) -> SeenJob | None:
        row = self.db.conn.execute(
            "SELECT state, station, answer FROM pool_jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        return None if row is None else SeenJob(row[0], row[1], row[2])

    def add(self, job_id: str, pool: str, kind: str, payload: bytes) -> PoolJob:
        """Store a new waiting job, numbered after every job before it."""
        with self.db.transaction():
            arrival = self.db.counter("pool_arrival") + 1
            self.db.set_counter("pool_arrival", arrival)
            job = PoolJob(job_id, arrival, pool, kind, payload, PoolJobState.WAITING)
            self.db.conn.execute(
                "INSERT INTO pool_jobs (job_id, arrival, pool, kind, payload, state) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (job.job_id, arrival, pool, kind, payload, job.state.value),
            )
        return job

    def assign(self, job_id: str, station: str, token: str) -> None:
        with self.db.transaction():
            self.db.conn.execute(
                "UPDATE pool_jobs SET state = ?, station = ?, token = ? WHERE job_id = ?",
                (PoolJobState.ASSIGNED.value, station, token, job_id),
            )

    def settle(self, job_id: str, state: PoolJobState, station: str | None, token: str | None,
               answer: Answer) -> None:
        """Record the assigned station's answer: ``done`` for good, or ``waiting`` again."""
        with self.db.transaction():
            self.db.conn.execute(
                "UPDATE pool_jobs SET state = ?, station = ?, token = ?, answer = ? "
                "WHERE job_id = ?",
                (state.value, station, token, answer.value, job_id),
            )
