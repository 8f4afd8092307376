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
    device: dict[str, Any] = Field(default_factory=dict)


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
