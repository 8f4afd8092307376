"""Marlin 2 family profile (3D printers, and cutters/lasers running Marlin)."""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from agent.errors import ProgramError
from agent.profiles.base import ProfileBase, StrictModel
from agent.profiles.toolpath import LiftMethod
from agent.reading.marlin_allowlist import RESERVED_COMMANDS, judge_line

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


_COMMAND_KEY = re.compile(r"^(?:[GM](?:0|[1-9]\d{0,4})(?:\.(?:[1-9]\d{0,2}))?|T\d)$")
_PARAM_LETTERS = frozenset("ABCDEFHIJKLOPQRSTUVWXYZ")  # not G, M (commands) nor N (numbering)


class CommandRule(StrictModel):
    """What a job may give one allowed command.

    ``params``: the parameter letters it may carry, each with a number; ``flags``: those of them
    that may also come without one (``G28 X``); ``min``/``max``: limits of a letter's value.
    Any other letter, a letter twice, or a value outside its limits refuses the line.
    """

    params: str = ""
    flags: str = ""
    min: dict[str, float] = Field(default_factory=dict)
    max: dict[str, float] = Field(default_factory=dict)
    note: str = ""

    @model_validator(mode="after")
    def _letters(self) -> CommandRule:
        if len(set(self.params)) != len(self.params):
            raise ValueError(f"params {self.params!r} names a letter twice")
        bad = set(self.params) - _PARAM_LETTERS
        if bad:
            raise ValueError(
                f"params {self.params!r}: {''.join(sorted(bad))} cannot be a parameter (A-Z but "
                "G and M, which start a command, and N, the agent's line number)"
            )
        for label, letters in (("flags", set(self.flags)), ("min", set(self.min)),
                               ("max", set(self.max))):
            stray = letters - set(self.params)
            if stray:
                raise ValueError(f"{label} names {''.join(sorted(stray))}, not in params")
        for letter, low in self.min.items():
            high = self.max.get(letter)
            if high is not None and low > high:
                raise ValueError(f"min {letter}={low} is above max {letter}={high}")
        for limits in (self.min, self.max):
            for letter, value in limits.items():
                if not math.isfinite(value):
                    raise ValueError(f"limit for {letter} is not a finite number")
        return self


class MarlinProfile(ProfileBase):
    family: Literal["marlin"]
    marlin: MarlinSettings = MarlinSettings()
    # The allowlist: every G/M/T code a job may contain, by canonical name (``G1``, ``M106``,
    # ``G29.1``), with what it may carry. Anything else is refused (blocked_instruction).
    commands: dict[str, CommandRule] = Field(default_factory=dict)

    @field_validator("commands")
    @classmethod
    def _allowed_names(cls, value: dict[str, CommandRule]) -> dict[str, CommandRule]:
        for name in value:
            if not _COMMAND_KEY.match(name):
                raise ValueError(
                    f"{name!r} is not a command name as the agent writes it (G, M or T, the "
                    "number without leading zeros, an optional .subcode: G1, M106, G29.1)"
                )
            base = name.split(".")[0]
            if base in RESERVED_COMMANDS:
                raise ValueError(
                    f"{name} may not be allowed by a profile: {RESERVED_COMMANDS[base]}"
                )
            if name[0] in "GM" and int(base[1:]) > 65_535:
                raise ValueError(f"{name}: Marlin reads command numbers modulo 65536")
            if "." in name and int(name.split(".")[1]) > 255:
                raise ValueError(f"{name}: Marlin reads subcodes modulo 256")
        return value

    @model_validator(mode="after")
    def _no_blocked_patterns(self) -> MarlinProfile:
        if self.blocked.patterns or self.blocked.allow:
            raise ValueError(
                "Marlin profiles list what a job may contain in [commands]; [blocked] patterns "
                "are not read for Marlin and would give a false sense of safety"
            )
        return self

    @model_validator(mode="after")
    def _toolpath_lines_allowed(self) -> MarlinProfile:
        """The lines the toolpath compiler writes from this profile pass its own allowlist."""
        if self.toolpath is None or not self.commands:
            return self
        settings = self.toolpath
        lines: list[tuple[str, str]] = [("preamble", "G21"), ("preamble", "G90")]
        if settings.laser is not None:
            beam = "M4" if settings.laser.dynamic_power else "M3"
            lines += [("laser.s_max", f"{beam} S{settings.laser.s_max}"), ("laser", "M5")]
            if settings.laser.air_assist:
                lines += [("laser.air_on", settings.laser.air_on),
                          ("laser.air_off", settings.laser.air_off)]
        if settings.lift is not None and settings.lift.method is LiftMethod.SERVO:
            lines += [("lift.servo_up", settings.lift.servo_up),
                      ("lift.servo_down", settings.lift.servo_down)]
            if settings.lift.servo_dwell_s > 0:
                lines.append(("lift.servo_dwell_s", f"G4 P{settings.lift.servo_dwell_s:g}"))
        for key, line in lines:
            try:
                judge_line(line, 0, self.commands, self.name)
            except ProgramError as exc:
                message = exc.message.removeprefix("line 0: ")
                raise ValueError(
                    f"toolpath {key}: the compiler would write {line!r}, which [commands] "
                    f"refuses: {message}"
                ) from None
        return self
