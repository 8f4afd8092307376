"""Fields every firmware profile has, whatever the machine family."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agent.profiles.toolpath import ToolpathSettings
from agent.strict import StrictModel

__all__ = ["BedSettings", "BlockedInstructions", "ProfileBase", "StrictModel"]


PositiveMm = Annotated[float, Field(gt=0, le=100_000)]


class BedSettings(StrictModel):
    """The machine's working area in millimetres, origin at (0, 0)."""

    width_mm: PositiveMm
    height_mm: PositiveMm


class BlockedInstructions(StrictModel):
    """Instructions a job may not contain (checked before anything is sent).

    ``patterns`` are regular expressions matched against the whole normalised line; ``allow``
    lists patterns a site explicitly permits, which win over ``patterns``.
    """

    patterns: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()


class ProfileBase(StrictModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    description: str = ""
    baud: Annotated[int, Field(ge=300, le=4_000_000)] = 115_200
    telemetry_hz: Annotated[float, Field(gt=0, le=20)] = 1.0
    bed: BedSettings
    blocked: BlockedInstructions = BlockedInstructions()
    # How long to wait for the firmware's hello after opening the port.
    hello_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    # How this machine turns toolpaths jobs into its own program; None: it takes none.
    toolpath: ToolpathSettings | None = None
