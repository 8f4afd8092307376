"""Durable job records: every accepted job, its state and how far the machine got."""

from __future__ import annotations

from dataclasses import dataclass

from agent.dialects.program import Program
from agent.jobs.states import ACTIVE, JobState, Trigger, next_state
from agent.schemas.base import utc_now_rfc3339
from agent.storage import Database

ARRIVAL_KEY = "next_arrival"


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    arrival: int
    state: JobState
    kind: str
    request: str
    lines_total: int
    lines_done: int
    error_code: str | None
    error_message: str | None


_COLUMNS = (
    "job_id, arrival, state, kind, request, lines_total, lines_done, error_code, error_message"
)


def _record(row: tuple[object, ...]) -> JobRecord:
    return JobRecord(
        job_id=str(row[0]),
        arrival=int(row[1]),  # type: ignore[call-overload]
        state=JobState(str(row[2])),
        kind=str(row[3]),
        request=str(row[4]),
        lines_total=int(row[5]),  # type: ignore[call-overload]
        lines_done=int(row[6]),  # type: ignore[call-overload]
        error_code=None if row[7] is None else str(row[7]),
        error_message=None if row[8] is None else str(row[8]),
    )


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, job_id: str) -> JobRecord | None:
        row = self.db.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)  # noqa: S608
        ).fetchone()
        return None if row is None else _record(row)

    def add(self, job_id: str, kind: str, request: str, program: Program) -> JobRecord:
        with self.db.transaction():
            arrival = self.db.counter(ARRIVAL_KEY) + 1
            self.db.set_counter(ARRIVAL_KEY, arrival)
            now = utc_now_rfc3339()
            self.db.conn.execute(
                "INSERT INTO jobs (job_id, arrival, state, kind, request, program, lines_total, "
                "created_ts, updated_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, arrival, JobState.QUEUED.value, kind, request, program.to_text(),
                 len(program), now, now),
            )
        record = self.get(job_id)
        assert record is not None
        return record

    def program(self, job_id: str) -> Program:
        row = self.db.conn.execute(
            "SELECT program FROM jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise KeyError(job_id)
        return Program.from_text(str(row[0]))

    def transition(self, job_id: str, trigger: Trigger, *, error_code: str | None = None,
                   error_message: str | None = None, lines_done: int | None = None) -> JobRecord:
        """Apply ``trigger`` by the state table (raises TransitionError if it does not apply)."""
        with self.db.transaction():
            record = self.get(job_id)
            if record is None:
                raise KeyError(job_id)
            new = next_state(record.state, trigger)
            self.db.conn.execute(
                "UPDATE jobs SET state = ?, error_code = COALESCE(?, error_code), "
                "error_message = COALESCE(?, error_message), "
                "lines_done = COALESCE(?, lines_done), updated_ts = ? WHERE job_id = ?",
                (new.value, error_code, error_message, lines_done, utc_now_rfc3339(), job_id),
            )
        updated = self.get(job_id)
        assert updated is not None
        return updated

    def set_progress(self, job_id: str, lines_done: int) -> None:
        self.db.conn.execute(
            "UPDATE jobs SET lines_done = ? WHERE job_id = ?", (lines_done, job_id)
        )

    def queued(self) -> list[JobRecord]:
        rows = self.db.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE state IN (?, ?) ORDER BY arrival",  # noqa: S608
            (JobState.QUEUED.value, JobState.AWAITING_OPERATOR.value),
        ).fetchall()
        return [_record(r) for r in rows]

    def waiting_ids(self) -> list[str]:
        """The queued jobs' ids in the order they will run (cheap: no requests loaded)."""
        rows = self.db.conn.execute(
            "SELECT job_id FROM jobs WHERE state IN (?, ?) ORDER BY arrival",
            (JobState.QUEUED.value, JobState.AWAITING_OPERATOR.value),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def count_waiting(self) -> int:
        row = self.db.conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE state IN (?, ?)",
            (JobState.QUEUED.value, JobState.AWAITING_OPERATOR.value),
        ).fetchone()
        return int(row[0])

    def active(self) -> list[JobRecord]:
        marks = ",".join("?" * len(ACTIVE))
        rows = self.db.conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE state IN ({marks}) ORDER BY arrival",  # noqa: S608
            tuple(s.value for s in ACTIVE),
        ).fetchall()
        return [_record(r) for r in rows]
