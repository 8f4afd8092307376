"""Marlin 2 G-code: validate and normalise a job's program, and frame lines for the wire.

Normalisation (what the line-number checksum and the ``[blocked]`` patterns see):
- ``;`` comments and ``( )`` comments are removed (Marlin only knows parentheses with
  PAREN_COMMENTS, so the agent strips them rather than let the firmware misread them);
- a line number ``N<n>`` at the start and a checksum ``*<n>`` at the end, as exported by some
  slicers, are removed: the agent numbers and checksums every line itself;
- the command word is upper case without leading zeros (``g01`` -> ``G1``), parameters are upper
  case and one space apart (``G1X10 y-2.5`` -> ``G1 X10 Y-2.5``); text commands (``M117``,
  ``M118``, SD file names) keep their text as written, trimmed;
- blank and comment-only lines are dropped (``Program.source_lines`` keeps the job's numbering).

Rejected: control or non-ASCII characters, ``*`` inside a line, a line that is not a
``G``/``M``/``T`` command followed by letter(+number) words, a second G or M command on a
line (Marlin would read it as a parameter) (``invalid_program``); a
normalised line longer than the profile's ``max_line_chars`` (``line_too_long``); a line
matching a ``[blocked]`` pattern and no ``allow`` pattern (``blocked_instruction``); a
program with no command (``empty_program``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from agent.dialects.gcode import check_printable, iter_program_lines, strip_comment
from agent.dialects.program import Program
from agent.errors import ProgramError

if TYPE_CHECKING:
    from agent.profiles.marlin import MarlinProfile

# Commands whose argument is free text, not words.
TEXT_COMMANDS = frozenset({"M23", "M28", "M30", "M32", "M33", "M117", "M118", "M928"})

_LEADING_N = re.compile(r"^\s*[Nn]\s*\d+\s*")
_TRAILING_CHECKSUM = re.compile(r"\*\s*\d+\s*$")
_COMMAND = re.compile(r"([GMT])0*(\d+)(\.\d+)?")
_PARAM = re.compile(r"([A-Z])([+-]?(?:\d+\.?\d*|\.\d+))?")


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


def normalise_line(raw: str, line_no: int) -> str:
    """The normalised command of one program line, or "" for a blank/comment-only line."""
    check_printable(raw, line_no)
    text = strip_comment(raw, line_no)
    text = _LEADING_N.sub("", text, count=1)
    text = _TRAILING_CHECKSUM.sub("", text, count=1).strip()
    if not text:
        return ""
    if "*" in text:
        raise ProgramError(
            f"line {line_no}: '*' inside a line (Marlin reads it as a checksum)",
            code="invalid_program",
            line=line_no,
        )
    m = _COMMAND.match(text.upper())
    if m is None:
        raise ProgramError(
            f"line {line_no}: {text[:20]!r} is not a G, M or T command",
            code="invalid_program",
            line=line_no,
        )
    word = m.group(1) + str(int(m.group(2))) + (m.group(3) or "")
    rest = text[m.end():]
    if word in TEXT_COMMANDS:
        rest = rest.strip()
        return f"{word} {rest}" if rest else word
    if rest and not rest[0].isspace() and not rest[0].isalpha():
        raise ProgramError(
            f"line {line_no}: cannot parse {text[:20]!r}", code="invalid_program", line=line_no
        )
    compact = re.sub(r"\s+", "", rest).upper()
    words = [word]
    pos = 0
    while pos < len(compact):
        p = _PARAM.match(compact, pos)
        if p is None or p.end() == pos:
            raise ProgramError(
                f"line {line_no}: cannot parse {compact[pos:pos + 12]!r} (a letter and an optional"
                " number are expected)",
                code="invalid_program",
                line=line_no,
            )
        if p.group(1) in "GM":
            raise ProgramError(
                f"line {line_no}: {p.group(0)!r} after {word}: Marlin runs one command per line",
                code="invalid_program",
                line=line_no,
            )
        words.append(p.group(0))
        pos = p.end()
    return " ".join(words)


class BlockList:
    def __init__(self, patterns: tuple[str, ...], allow: tuple[str, ...]) -> None:
        self._patterns = [re.compile(p) for p in patterns]
        self._allow = [re.compile(p) for p in allow]

    def blocked_by(self, line: str) -> str | None:
        """The pattern that blocks ``line``, or None."""
        for pattern in self._patterns:
            if pattern.fullmatch(line):
                if any(a.fullmatch(line) for a in self._allow):
                    return None
                return pattern.pattern
        return None


def prepare_marlin_program(program: str, profile: MarlinProfile) -> Program:
    """Validate and normalise ``program`` for ``profile``; raises ProgramError, sends nothing."""
    blocks = BlockList(profile.blocked.patterns, profile.blocked.allow)
    limit = profile.marlin.max_line_chars
    lines: list[str] = []
    numbers: list[int] = []
    for line_no, raw in iter_program_lines(program):
        line = normalise_line(raw, line_no)
        if not line:
            continue
        pattern = blocks.blocked_by(line)
        if pattern is not None:
            raise ProgramError(
                f"line {line_no}: {line!r} is not allowed in a job on {profile.name} "
                f"(blocked by {pattern!r})",
                code="blocked_instruction",
                line=line_no,
            )
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
