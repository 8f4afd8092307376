"""Marlin 2 G-code: read a job's program as the firmware would, allow it by name, frame it.

Each line is read by :mod:`agent.reading.marlin` the way Marlin's queue and parser read
it (comments, ``N``/``*``, case, leading zeros, spaces, subcodes, text arguments), then judged
against the profile's allowlist (``[commands]`` in the profile: every G/M/T code a job may
contain, with the parameter letters it may carry and their limits). What is not listed is
refused. The agent sends the canonical form of what it read, never the job's own text.

Refused, with the job's line number:
- ``invalid_program``: control or non-ASCII characters, an unbalanced ``(``, a line that is not
  a G/M/T command, anything Marlin could read otherwise than it looks (see agent.reading.marlin);
- ``blocked_instruction``: a command not in the allowlist (the message says why, for the
  commands the profile may never allow: :data:`agent.reading.marlin_allowlist.RESERVED_COMMANDS`), a
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

from agent.dialects.program import Program
from agent.errors import ProgramError
from agent.reading.gcode import iter_program_lines
from agent.reading.marlin_allowlist import judge_line

if TYPE_CHECKING:
    from agent.profiles.marlin import MarlinProfile

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


def prepare_line(raw: str, line_no: int, profile: MarlinProfile) -> str:
    """The canonical line to send for one program line, or "" for a blank/comment-only one."""
    return judge_line(raw, line_no, profile.commands, profile.name)


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
