"""Marlin 2 family profile (3D printers, and cutters/lasers running Marlin)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator

from agent.profiles.base import ProfileBase, StrictModel

Seconds = Annotated[float, Field(gt=0, le=86_400)]


class AdvancedOk(StrEnum):
    """Whether the host trusts ADVANCED_OK (``ok N<line> P<planner> B<queue>``) answers."""

    # Use it when the firmware's oks carry N/P/B (seen on the ok of the M110 handshake).
    AUTO = "auto"
    # Ignore the extra fields even when present (count oks only).
    OFF = "off"


class LongCommandAllowances(StrictModel):
    """How long (s) each long-running command may go without an ``ok``.

    While the oldest unacknowledged line is one of these, its allowance replaces
    ``response_timeout_s``; ``busy:`` messages extend either. ``G4`` waits its own duration plus
    ``response_timeout_s``.
    """

    g28: Seconds = 180.0  # homing
    g29: Seconds = 900.0  # bed levelling probe grid
    m109: Seconds = 1200.0  # wait for hot end
    m190: Seconds = 1800.0  # wait for bed
    m400: Seconds = 1800.0  # wait for every planned move to finish
    m303: Seconds = 1800.0  # PID autotune (blocked by default, allowed by a site)


class MarlinSettings(StrictModel):
    # Serial receive buffer of the board (RX_BUFFER_SIZE); one byte is kept free.
    rx_buffer_bytes: Annotated[int, Field(ge=32, le=65_536)] = 128
    # Command queue depth (BUFSIZE). Only an upper bound for the depth the firmware reports with
    # ADVANCED_OK: the window never assumes lines are queued before an ok shows it (issue 14).
    command_queue: Annotated[int, Field(ge=1, le=64)] = 4
    # Longest program line, before the agent adds ``N<n> `` and ``*<checksum>``; Marlin's
    # MAX_CMD_SIZE (96 with the terminator) must hold the whole numbered line.
    max_line_chars: Annotated[int, Field(ge=16, le=240)] = 80
    # Lines kept for resends; a request for an older line fails the job (resend_out_of_history).
    history_lines: Annotated[int, Field(ge=16, le=100_000)] = 256
    # Retransmissions of one line before the job fails with resend_loop.
    max_resends_per_line: Annotated[int, Field(ge=1, le=100)] = 8
    # One line in flight at a time, like OctoPrint (for boards that lose bytes otherwise).
    stop_and_wait: bool = False
    advanced_ok: AdvancedOk = AdvancedOk.AUTO
    # Without ADVANCED_OK: an M105 after every this many lines; its ``ok T:`` answer puts the ok
    # count right if an ok was lost (0: only on silence).
    sync_every_lines: Annotated[int, Field(ge=0, le=100_000)] = 200
    # No ok/resend/busy within this while lines are in flight: one probe, then device_timeout.
    response_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    # BUSY_PROTOCOL interval asked for with M113 (whole seconds, Marlin's unit).
    keepalive_interval_s: Annotated[int, Field(ge=1, le=60)] = 1
    # M155 auto-report interval when the firmware has AUTOREPORT_TEMP (whole seconds).
    temperature_report_s: Annotated[int, Field(ge=1, le=60)] = 2
    # Wait for the firmware's first answer after opening the port (boards reset on open).
    boot_wait_s: Annotated[float, Field(ge=0, le=30)] = 2.0
    long_commands: LongCommandAllowances = LongCommandAllowances()
    # Sent (as ordinary numbered lines) when a job is canceled: heaters off, fan off, park.
    cancel_sequence: tuple[str, ...] = ("M104 S0", "M140 S0", "M107", "G91", "G0 Z10", "G90")
    # With EMERGENCY_PARSER, pause sends M108 to end a running M109/M190 wait. The queued lines
    # behind the wait then run without the heat they waited for, so it is off by default.
    pause_breaks_heat_wait: bool = False

    @field_validator("cancel_sequence")
    @classmethod
    def _plain_lines(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for line in value:
            if not line.strip() or any(c in line for c in "*;\n\r"):
                raise ValueError(f"cancel_sequence line {line!r} is empty or has * ; or EOL")
        return value


class MarlinProfile(ProfileBase):
    family: Literal["marlin"]
    marlin: MarlinSettings = MarlinSettings()
