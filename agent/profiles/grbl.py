"""GRBL 1.1 family profile."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from agent.profiles.base import ProfileBase, StrictModel
from agent.reading.grbl import G_COMMANDS, M_COMMANDS, SYSTEM_KINDS, VALUE_LETTERS

# Values GRBL accepts at all for a command's parameter word (gcode.c): G10 takes L2 or L20.
_KNOWN_PARAMETER_VALUES: dict[tuple[str, str], frozenset[int]] = {
    ("G10", "L"): frozenset({2, 20}),
}
# Commands a profile may name only together with the parameter values it allows.
_NEEDS_PARAMETER_LIST: dict[str, str] = {"G10": "L"}


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
    # A job held (feed hold, M0) longer than this since the hold began or a person last paused
    # or resumed it gets a `hold_too_long` warning, and the status shows held_s.
    hold_limit_s: Annotated[float, Field(gt=0, le=604_800)] = 600.0


class GrblAllowlist(StrictModel):
    """What a job may contain, by name, as GRBL reads it (see docs/allowlists.md).

    ``g`` and ``m`` name commands the way GRBL computes them from a word (``G01``, ``G1.0`` and
    ``G1`` are all ``G1``). ``params`` restricts a parameter word of a command to the integer
    values GRBL reads from it (``{"G10": {"L": [20]}}``); G10 must be given one. ``system``
    names the ``$`` lines allowed (``$J=``, ``$H``...); none by default. Everything else is
    refused before anything is sent.
    """

    g: tuple[str, ...]
    m: tuple[str, ...] = ()
    params: dict[str, dict[str, tuple[int, ...]]] = Field(default_factory=dict)
    system: tuple[str, ...] = ()

    @field_validator("g")
    @classmethod
    def _known_g(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in names if n not in G_COMMANDS]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not GRBL 1.1 G commands as GRBL names them "
                f"(known: {', '.join(sorted(G_COMMANDS))})"
            )
        return names

    @field_validator("m")
    @classmethod
    def _known_m(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in names if n not in M_COMMANDS]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not GRBL 1.1 M commands (known: "
                f"{', '.join(sorted(M_COMMANDS))})"
            )
        return names

    @field_validator("system")
    @classmethod
    def _known_system(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in names if n not in SYSTEM_KINDS]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not GRBL '$' commands (known: "
                f"{', '.join(sorted(SYSTEM_KINDS))})"
            )
        return names

    @model_validator(mode="after")
    def _parameters_of_allowed_commands(self) -> GrblAllowlist:
        named = set(self.g) | set(self.m)
        for command, words in self.params.items():
            if command not in named:
                raise ValueError(f"params.{command}: {command} is not in the allowlist's g or m")
            for letter, values in words.items():
                if letter not in VALUE_LETTERS:
                    raise ValueError(f"params.{command}.{letter}: not a GRBL parameter word")
                known = _KNOWN_PARAMETER_VALUES.get((command, letter))
                if known is not None and not set(values) <= known:
                    raise ValueError(
                        f"params.{command}.{letter}: GRBL takes only {sorted(known)}"
                    )
        for command, letter in _NEEDS_PARAMETER_LIST.items():
            if command in named and not self.params.get(command, {}).get(letter):
                raise ValueError(
                    f"{command} is allowed only with the {letter} values it may use: "
                    f"add params.{command}.{letter}"
                )
        return self

    def allowed_values(self, command: str, letter: str) -> tuple[int, ...] | None:
        """The values ``letter`` may take with ``command``; None: not restricted."""
        return self.params.get(command, {}).get(letter)


class GrblProfile(ProfileBase):
    family: Literal["grbl"]
    grbl: GrblSettings = GrblSettings()
    allowlist: GrblAllowlist

    @model_validator(mode="after")
    def _no_regex_blocklist(self) -> GrblProfile:
        if self.blocked.patterns or self.blocked.allow:
            raise ValueError(
                "[blocked] patterns are not a guard for GRBL: name what a job may contain in "
                "[allowlist] instead (docs/allowlists.md)"
            )
        return self
