"""The retained station status on ``<prefix>/<station>/status`` and the retained ``info``."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class StationState(StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    AWAITING_OPERATOR = "awaiting_operator"
    PAUSED = "paused"
    ALARM = "alarm"
    # The machine is in a mode in which it executes no lines (GRBL check mode, sleep):
    # device.state says which; jobs wait queued until a person changes it.
    NOT_READY = "not_ready"
    ESTOP = "estop"
    ERROR = "error"
    # The agent cannot write its database (disk full or failing): it takes no new jobs.
    STORAGE_ERROR = "storage_error"
    DEVICE_OFFLINE = "device_offline"
    OFFLINE = "offline"


class Status(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    station: str
    state: StationState
    job_id: str | None = None
    ts: str | None = None
    # Increases on every agent start; a controller ignores an `offline` Will older than this.
    session: int = Field(ge=0)
    device: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "The machine as the agent sees it: online, firmware, version, port, state, alarm; "
            "GRBL adds held_s and hold_limit_s (seconds) while a job has been in feed hold "
            "longer than its profile's [grbl] hold_limit_s without a person's pause or resume."
        ),
    )


class Info(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    station: str
    agent_version: str
    profile: str
    family: str
    dialect: str
    bed_mm: tuple[float, float]
    job_kinds: list[str]
    # Pools this station takes jobs from (the pool keeper reads this).
    pools: list[str] = Field(default_factory=list)
    commands: list[str]
    capabilities: dict[str, Any] = Field(default_factory=dict)
    firmware: dict[str, Any] = Field(default_factory=dict)
