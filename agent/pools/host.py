"""What a pool member needs of the station it answers for, and nothing more.

:class:`agent.station.Station` is the one real host; tests drive a :class:`PoolMember
<agent.pools.member.PoolMember>` with a small stand-in. Kept structural (a ``Protocol``), so
this package never imports the station, which sits above it.
"""

from __future__ import annotations

from typing import Any, Protocol

from agent.jobs.intake import AcceptedJob, Rejection
from agent.schemas.event import EventType
from agent.schemas.pool import PoolReply
from agent.schemas.status import StationState


class HeldJobs(Protocol):
    """The jobs the station holds (:class:`agent.jobs.store.JobStore`)."""

    def get(self, job_id: str) -> object | None:
        """The stored job, or None if this station has never had it."""

    def count_waiting(self) -> int:
        """How many accepted jobs wait for their turn."""


class Runner(Protocol):
    """The station's job runner (:class:`agent.jobs.runner.JobRunner`)."""

    @property
    def current(self) -> object | None:
        """The job on the machine now, if any."""

    def notify_queue(self) -> None:
        """A job was stored: start it when its turn comes."""


class PoolReporter(Protocol):
    """The station's events and answers (:class:`agent.reporter.Reporter`)."""

    def event(self, event: EventType, job_id: str | None,
              detail: dict[str, Any] | None = None) -> object:
        """Queue one of the station's events (lifecycle events raise StorageError on a fault)."""

    def pool_reply(self, reply: PoolReply, *, durable: bool) -> None:
        """Answer the keeper: straight out, or (``durable``) through the outbox."""


class PoolHost(Protocol):
    @property
    def job_kinds(self) -> list[str]:
        """The job kinds this station's machine runs."""

    @property
    def store(self) -> HeldJobs: ...

    @property
    def runner(self) -> Runner: ...

    @property
    def reporter(self) -> PoolReporter: ...

    def derive_state(self) -> tuple[StationState, str | None]:
        """The station's state now, and the job it concerns."""

    def start_blocker(self) -> str | None:
        """Why no job may start now though the station is idle (e-stop, door, storage)."""

    def validate_job(self, payload: bytes, *, pool: str | None = None) -> AcceptedJob | Rejection:
        """Check a job's signature and content; pure work, called in a worker thread."""

    def reject(self, rejection: Rejection) -> None:
        """Tell the planner a job was refused (its ``rejected`` event)."""

    def store_job(self, job: AcceptedJob, *, waiting: int = 0, pool: str | None = None) -> None:
        """Store an accepted job and its ``accepted`` event, in the caller's transaction."""
