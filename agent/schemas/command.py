"""Commands a planner or operator publishes on ``<prefix>/<station>/cmd``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from agent.schemas.base import WireModel
from agent.schemas.job import JobId


class CommandName(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    ESTOP = "estop"
    RESET = "reset"
    # The operator's start, as by the station's start button: releases the wait for a start
    # after an e-stop (a job with require_operator_start still needs the button itself).
    START = "start"
    # Clear a machine alarm (GRBL `$X`) on a person's explicit request; never done on its own.
    UNLOCK = "unlock"
    # The last lines exchanged with the machine, answered by command_done's detail.trace.
    TRACE = "trace"


class Command(WireModel):
    v: Literal[1] = 1
    cmd: CommandName
    # The job the command is meant for; when given, it must match (cancel may name a queued job).
    job_id: JobId | None = None
    # Echoed in the event that answers the command, so a caller can match the reply.
    request_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
