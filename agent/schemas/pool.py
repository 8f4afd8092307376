"""Pool dispatch: the messages between the pool keeper and the stations of a pool.

A planner publishes an ordinary job (:class:`~agent.schemas.job.JobRequest`) on
``<prefix>/pools/<pool>/job``. The keeper holds it durably and offers it to one free member at a
time (:class:`PoolOffer` on ``<prefix>/<station>/offer``); a member that is free answers
``claim``, any other ``decline`` (:class:`PoolReply` on
``<prefix>/pools/<pool>/replies/<station>``, which the broker's ACL lets only that station
write). Only after a claim does the keeper send the job itself (:class:`PoolAssignment` on
``<prefix>/<station>/pool_job``), and the station answers ``taken``, ``rejected`` (the job is bad:
the planner gets the station's ``rejected`` event) or ``handback`` (it became busy meanwhile: the
keeper offers the job again, elsewhere).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.schemas.base import WireModel
from agent.schemas.job import JobId

# The topic level under the prefix that holds pool topics (``<prefix>/pools/<pool>/...``); no
# station may be called this. Part of the wire contract, so both the config and the link read it.
POOLS = "pools"
PoolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
# Chosen by the keeper: 128 random bits as 32 lower-case hex digits, secret between the keeper
# and the one station it was sent to (a reply must carry it). The older "<session>-<number>"
# form is still read, for assignments made by a keeper before the upgrade.
Token = Annotated[str, Field(pattern=r"^(?:[0-9a-f]{32}|[0-9]{1,12}-[0-9]{1,15})$")]


class PoolOffer(WireModel):
    """Keeper to station: would you take this job now?"""

    v: Literal[1] = 1
    pool: PoolName
    job_id: JobId
    kind: str = Field(max_length=32)
    offer: Token


class PoolAssignment(WireModel):
    """Keeper to station, after its claim: the job itself, exactly as the planner sent it."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    v: Literal[1] = 1
    pool: PoolName
    assignment: Token
    job: dict[str, Any]


class Answer(StrEnum):
    CLAIM = "claim"
    DECLINE = "decline"
    TAKEN = "taken"
    REJECTED = "rejected"
    HANDBACK = "handback"


class PoolReply(BaseModel):
    """Station to keeper. ``token`` is the offer (claim, decline) or the assignment answered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    station: str
    pool: PoolName
    job_id: str
    answer: Answer
    token: Token
    reason: str | None = None
