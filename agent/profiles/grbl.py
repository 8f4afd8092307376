"""GRBL 1.1 family profile."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from agent.profiles.base import ProfileBase, StrictModel


class GrblSettings(StrictModel):
    # Serial receive buffer of the controller (RX_BUFFER_SIZE); one byte is kept free.
    rx_buffer_bytes: Annotated[int, Field(ge=16, le=65_536)] = 128
    # Longest line GRBL accepts (LINE_BUFFER_SIZE - 1).
    max_line_chars: Annotated[int, Field(ge=16, le=1024)] = 79
    # `?` status polls per second; grbl's docs advise 5 Hz or less.
    poll_hz: Annotated[float, Field(gt=0, le=10)] = 5.0
    # What a program line answered `error:N` does: fail the job at once, or carry on.
    on_error: Literal["fail", "continue"] = "fail"
    # How long after a realtime feed hold to wait for Hold:0 before giving up.
    hold_timeout_s: Annotated[float, Field(gt=0, le=120)] = 30.0
    # The machine must answer something (ok, status) within this; else device_timeout.
    response_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0


class GrblProfile(ProfileBase):
    family: Literal["grbl"]
    grbl: GrblSettings = GrblSettings()
