from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A model that rejects unknown keys; config and profiles are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
