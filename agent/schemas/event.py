"""Events the station publishes on ``<prefix>/<station>/events`` (QoS 1, in seq order)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class EventType(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    AWAITING_OPERATOR = "awaiting_operator"
    STARTED = "started"
    PROGRESS = "progress"
    PAUSED = "paused"
    RESUMED = "resumed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    INTERRUPTED = "interrupted"
    WARNING = "warning"
    STORAGE_PRESSURE = "storage_pressure"
    # The database could not be written (disk full or failing), and since when; sent once a
    # write works again (detail.resolved) or at once if the outbox could still take it.
    STORAGE_ERROR = "storage_error"
    COMMAND_DONE = "command_done"


# Events that tell a job's lifecycle: never dropped, whatever the storage pressure.
LIFECYCLE_EVENTS = frozenset(EventType) - {EventType.PROGRESS, EventType.WARNING}


def request_echo(request_id: str | None) -> dict[str, Any]:
    """The ``request_id`` a command carried, for the event that answers it (nothing if none)."""
    return {"request_id": request_id} if request_id else {}


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    code: str
    message: str


class Event(BaseModel):
    """An outgoing event. ``seq`` grows by exactly one per event of the station, forever."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    station: str
    seq: int = Field(ge=1)
    ts: str
    event: EventType
    job_id: str | None
    detail: dict[str, Any] = Field(default_factory=dict)
