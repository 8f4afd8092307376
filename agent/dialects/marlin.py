"""Marlin 2 G-code: read a job's program as the firmware would, allow it by name, frame it.

Each line is read by :mod:`agent.dialects.marlin_words` the way Marlin's queue and parser read
it (comments, ``N``/``*``, case, leading zeros, spaces, subcodes, text arguments), then judged
against the profile's allowlist (``[commands]`` in the profile: every G/M/T code a job may
contain, with the parameter letters it may carry and their limits). What is not listed is
refused. The agent sends the canonical form of what it read, never the job's own text.

Refused, with the job's line number:
- ``invalid_program``: control or non-ASCII characters, an unbalanced ``(``, a line that is not
  a G/M/T command, anything Marlin could read otherwise than it looks (see marlin_words);
- ``blocked_instruction``: a command not in the allowlist (the message says why, for the
  commands the profile may never allow: :data:`agent.profiles.marlin.RESERVED_COMMANDS`), a
  parameter it may not carry or a value outside its limits, and a line that carries its own
  ``N<n>`` or ``*<checksum>`` (the agent numbers and checksums every line; a job's own would
  only be dropped, so it is refused rather than silently rewritten);
- ``line_too_long``: a canonical line longer than the profile's ``max_line_chars``;
- ``empty_program``: no command at all.

``( )`` comments are removed (Marlin only knows them with PAREN_COMMENTS; the agent never sends
them), blank and comment-only lines are dropped (``Program.source_lines`` keeps the job's
numbering).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.dialects.gcode import check_printable, iter_program_lines, strip_comment
from agent.dialects.marlin_words import (
    MarlinLine,
    canonical,
    check_framing,
    read_command,
    read_params,
)
from agent.dialects.program import Program
from agent.errors import ProgramError
from agent.profiles.marlin import RESERVED_COMMANDS

if TYPE_CHECKING:
    from agent.profiles.marlin import CommandRule, MarlinProfile

# Why commands that are often asked for are left out of the shipped allowlist (a site may add
# them to its own profile knowingly; the reserved ones it may not).
NOT_SHIPPED: dict[str, str] = {
    "G28": "homing is an operator action, never accepted from the network",
    "G29": "bed levelling is an operator action",
    "M0": "waits for a click at the machine, where nobody is",
    "M1": "waits for a click at the machine, where nobody is",
    "M17": "motor power is the operator's (steppers are enabled by the moves themselves)",
    "M18": "turns the motors off: the position is lost and a Z axis may drop",
    "M84": "turns the motors off: the position is lost and a Z axis may drop",
    "M42": "writes an output pin directly",
    "M43": "pin debugging (its T mode toggles pins)",
    "M80": "switches the power supply",
    "M81": "switches the power supply off",
    "M92": "changes steps per mm: every later move would be scaled",
    "M201": "changes the machine's acceleration limits",
    "M203": "changes the machine's feed-rate limits",
    "M204": "changes the machine's acceleration limits",
    "M205": "changes the machine's jerk limits",
    "M206": "shifts the home offsets",
    "M211": "switches the soft endstops (the bed limits) on or off",
    "M220": "overrides the feed rate for every later move",
    "M221": "overrides the flow rate",
    "M226": "waits for a pin state",
    "M303": "PID autotune: minutes of unattended heating",
    "M500": "writes settings to EEPROM: they would outlive the job",
    "M501": "loads settings from EEPROM",
    "M502": "resets settings to the firmware's defaults",
    "M503": "prints the settings (a long report the agent does not read)",
    "M504": "validates the EEPROM",
    "M600": "filament change: needs a person at the machine",
    "G20": "inch units: every later coordinate would be read 25.4 times larger",
}


def checksum(data: bytes) -> int:
    """Marlin's line checksum: XOR of every byte before ``*``."""
    # Fold the line read as one integer onto itself: XOR of the two halves, bytewise, until one
    # byte is left (a handful of big-integer operations instead of a Python loop per byte).
    value = int.from_bytes(data, "little")
    size = len(data)
    while size > 1:
        half = (size + 1) // 2
        bits = 8 * half
        value = (value & ((1 << bits) - 1)) ^ (value >> bits)
        size = half
    return value


def frame_line(number: int, line: str) -> bytes:
    """``N<number> <line>*<checksum>\\n`` as bytes, ready for the wire."""
    body = f"N{number} {line}".encode("ascii")
    return b"%s*%d\n" % (body, checksum(body))


def _refuse(line_no: int, message: str) -> ProgramError:
    return ProgramError(f"line {line_no}: {message}", code="blocked_instruction", line=line_no)


def _why_not(command: MarlinLine) -> str:
    base = command.firmware_name.split(".")[0]
    if command.number > 65_535:
        return (f"Marlin reads command numbers modulo 65536, so it would run "
                f"{command.firmware_name}")
    if base in RESERVED_COMMANDS:
        return RESERVED_COMMANDS[base] + " (never allowed in a job)"
    reason = NOT_SHIPPED.get(command.name, "")
    return f"not in the profile's allowlist{': ' + reason if reason else ''}"


def _check_params(
    command: MarlinLine, params: tuple[tuple[str, str | None], ...], rule: CommandRule,
    line_no: int,
) -> None:
    for letter, value in params:
        if letter not in rule.params:
            allowed = ", ".join(rule.params) or "none"
            raise _refuse(
                line_no, f"{command.name} may not carry {letter} in a job (allowed: {allowed})"
            )
        if value is None:
            if letter not in rule.flags:
                raise _refuse(line_no, f"{command.name} {letter} needs a number")
            continue
        number = float(value)
        low = rule.min.get(letter)
        high = rule.max.get(letter)
        if (low is not None and number < low) or (high is not None and number > high):
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            raise _refuse(
                line_no, f"{command.name} {letter}{value} is outside {lo}..{hi} allowed on this "
                "station"
            )


def prepare_line(raw: str, line_no: int, profile: MarlinProfile) -> str:
    """The canonical line to send for one program line, or "" for a blank/comment-only one."""
    check_printable(raw, line_no)
    command = read_command(strip_comment(raw, line_no), line_no)
    if command is None:
        return ""
    rule = None if command.number > 65_535 else profile.commands.get(command.name)
    if rule is None or command.is_text_command:
        written = raw.strip()
        shown = repr(written if len(written) <= 40 else written[:37] + "...")
        raise _refuse(
            line_no, f"{shown} is {command.name}, not allowed in a job on {profile.name}: "
            f"{_why_not(command)}"
        )
    params = read_params(command, line_no)
    _check_params(command, params, rule, line_no)
    check_framing(command, line_no)
    return canonical(command, params)


def prepare_marlin_program(program: str, profile: MarlinProfile) -> Program:
    """Validate and normalise ``program`` for ``profile``; raises ProgramError, sends nothing."""
    limit = profile.marlin.max_line_chars
    lines: list[str] = []
    numbers: list[int] = []
    for line_no, raw in iter_program_lines(program):
        line = prepare_line(raw, line_no, profile)
        if not line:
            continue
        if len(line) > limit:
            raise ProgramError(
                f"line {line_no}: {len(line)} characters, {profile.name} takes at most {limit}",
                code="line_too_long",
                line=line_no,
            )
        lines.append(line)
        numbers.append(line_no)
    if not lines:
        raise ProgramError("the program has no G-code lines", code="empty_program")
    return Program(tuple(lines), tuple(numbers))
