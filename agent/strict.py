"""The strict pydantic base every config and profile model shares, and how its errors read.

Lowest layer (only pydantic): the station config, the firmware profiles, the GPIO and signing
settings all build on it without importing one another.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError


class StrictModel(BaseModel):
    """A model that rejects unknown keys; config and profiles are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the key by its dotted path."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
