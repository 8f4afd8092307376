from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """Incoming wire payloads: unknown keys are errors, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def utc_now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
