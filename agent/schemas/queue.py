"""The retained ``queue`` topic: what a station still has to do, and when it expects to be done.

Published on every change of the queue (a job accepted, started or ended) and, while a job
runs, at most every :data:`QUEUE_REFRESH_S` seconds as its remaining time is re-estimated."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

QUEUE_REFRESH_S = 30.0


class QueuedJob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    # The machine time the job will take (None: no estimate for this machine or job).
    estimated_s: float | None = None


class RunningJob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    # The modelled machine time of the lines the machine has not acknowledged yet.
    remaining_s: float | None = None


class QueueView(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    station: str
    ts: str
    running: RunningJob | None = None
    # In the order they will run.
    waiting: list[QueuedJob] = Field(default_factory=list)
    # The running job's remaining time plus every waiting job's estimate, over the jobs that
    # have one; ``unestimated`` counts those that do not.
    total_s: float = 0.0
    unestimated: int = 0
    # ts + total_s, when every job has an estimate (machine time only: no operator waits).
    expected_finish: str | None = None
