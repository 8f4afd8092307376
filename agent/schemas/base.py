from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """Incoming wire payloads: unknown keys are errors, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def utc_now_rfc3339() -> str:
    return rfc3339(datetime.now(UTC))


def rfc3339(when: datetime) -> str:
    """A UTC time as the wire carries it: milliseconds and a ``Z``."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
