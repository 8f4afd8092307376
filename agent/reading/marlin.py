"""Read a job's G-code line the way Marlin 2 reads it, strictly: what the allowlist judges.

Marlin's reading (``GCodeQueue::get_serial_commands`` / ``process_stream_char`` in queue.cpp,
then ``GCodeParser::parse`` in parser.cpp, default configuration: GCODE_CASE_INSENSITIVE and
FASTER_GCODE_PARSER on, PAREN_COMMENTS and GCODE_QUOTED_STRINGS off):

- ``;`` ends the line (the caller removes comments first, with ``strip_comment``); a backslash
  escapes the next character (so ``\\;`` is not a comment); a backspace erases one character;
- leading spaces are skipped; ``N<n>`` and the spaces after it are skipped; the line is cut at
  the first ``*`` (the checksum), and spaces before it go;
- the command letter ``G``, ``M`` or ``T`` in either case, optional spaces (``M 118``), then
  the number as digits, leading zeros allowed (``M0112`` is M112), read into a 16-bit unsigned
  number (``M65654`` is M118), then an optional ``.subcode`` (8 bits);
- ``M16``, ``M23``, ``M28``, ``M30``, ``M117``, ``M118``, ``M928`` (and the macros
  ``M810``-``M819``) take the rest of the line as text, whatever it contains; ``M32`` takes the
  text between ``!`` and ``#``;
- otherwise each parameter is a letter (upper-cased), optional spaces, then an optional number
  (``[-+]?.?[0-9]...``, read by strtof/strtol where the command uses it); a later copy of a
  letter replaces the earlier one, a character that is not a letter is kept as the line's
  "string argument", and ``value_float`` stops a number at ``E``/``X`` (so ``X1e5`` is X1 E5 on
  Marlin 2.1, but X100000 on builds whose strtof reads the exponent).

What this reader takes is a strict subset whose meaning does not depend on the build: it
refuses (``invalid_program``) what Marlin would read differently from the way it looks, or
differently from one configuration to another: a backslash or double quote, a number followed
at once by ``E``/``X`` (exponent or hex), a letter given twice, a value followed by anything but
a space or another letter (``X1.2.3``, ``X1-2``), a signed or dotted command number that is not
a subcode, a ``*`` not followed by a number. The agent then sends each line in its canonical
form (:meth:`MarlinLine.canonical`), never the job's own text, so the firmware runs exactly the
words that were checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.errors import ProgramError

# M codes whose whole remaining line is text to Marlin's parser (parser.cpp: string_arg), and
# M32, whose ``!path#`` argument is text as well.
TEXT_COMMAND_NUMBERS = frozenset({16, 23, 28, 30, 32, 117, 118, 928, *range(810, 820)})

_SPACE = " \t"
_LINE_NUMBER = re.compile(r"[Nn][-+]?\d+[ \t]*")
_COMMAND_NUMBER = re.compile(r"(\d+)(?:\.(\d+))?")
_VALUE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_CHECKSUM = re.compile(r"[ \t]*\d+[ \t]*")


def _invalid(line_no: int, message: str) -> ProgramError:
    return ProgramError(f"line {line_no}: {message}", code="invalid_program", line=line_no)


@dataclass(frozen=True)
class MarlinLine:
    """One command as Marlin would run it; ``params`` are read by :func:`read_params`."""

    letter: str  # G, M or T (upper case)
    number: int  # as written (Marlin runs ``number % 65536``)
    subcode: int  # 0: none
    rest: str  # the text after the command word (parameters, or a text command's text)
    line_number: str | None  # the job's own ``N<n>``, if it carried one
    checksum: str | None  # the job's own ``*<n>``, if it carried one

    @property
    def name(self) -> str:
        """The command as the allowlist names it: ``G1``, ``M106``, ``G29.1``."""
        sub = f".{self.subcode}" if self.subcode else ""
        return f"{self.letter}{self.number}{sub}"

    @property
    def firmware_name(self) -> str:
        """What Marlin runs: its command number is 16 bits, its subcode 8."""
        sub = self.subcode % 256
        return f"{self.letter}{self.number % 65_536}{f'.{sub}' if sub else ''}"

    @property
    def is_text_command(self) -> bool:
        return self.letter == "M" and self.number % 65_536 in TEXT_COMMAND_NUMBERS


def read_command(text: str, line_no: int) -> MarlinLine | None:
    """The command of a comment-free line, or None for a blank one; raises invalid_program."""
    for bad, why in (("\\", "a backslash makes Marlin take the next character literally"),
                     ('"', "a double quote starts a quoted string on some Marlin builds")):
        if bad in text:
            raise _invalid(line_no, f"{bad!r} in a command line ({why})")
    body, star, tail = text.partition("*")
    checksum = tail.strip() if star else None
    body = body.lstrip(_SPACE)
    line_number: str | None = None
    m = _LINE_NUMBER.match(body)
    if m is not None:
        line_number = m.group(0).strip()
        body = body[m.end():]
    elif body[:1] in ("N", "n") and body[1:2] in ("+", "-"):
        raise _invalid(line_no, f"cannot read the line number in {body[:12]!r}")
    body = body.rstrip(_SPACE)
    if not body:
        if line_number is None and checksum is None:
            return None
        raise ProgramError(
            f"line {line_no}: a line number or checksum with no command; the agent numbers "
            "and checksums every line itself",
            code="blocked_instruction",
            line=line_no,
        )
    letter = body[0].upper()
    if letter not in "GMT":
        raise _invalid(line_no, f"{body[:20]!r} is not a G, M or T command")
    pos = 1
    while pos < len(body) and body[pos] == " ":  # parser.cpp: trimLeft(' ') before the number
        pos += 1
    number = _COMMAND_NUMBER.match(body, pos)
    if number is None:
        raise _invalid(line_no, f"{body[:20]!r}: {letter} is not followed by a command number")
    end = number.end()
    if end < len(body) and body[end] in ".+-":
        raise _invalid(line_no, f"cannot read the command number in {body[:20]!r}")
    return MarlinLine(
        letter=letter,
        number=int(number.group(1)),
        subcode=int(number.group(2)) if number.group(2) else 0,
        rest=body[end:],
        line_number=line_number,
        checksum=checksum,
    )


def check_framing(command: MarlinLine, line_no: int) -> None:
    """Refuse a job line's own ``N<n>``/``*<checksum>``: the agent numbers every line itself.

    Called once the command is judged, so a forbidden command is named first.
    """
    if command.checksum is not None and not _CHECKSUM.fullmatch(command.checksum):
        raise _invalid(
            line_no, f"text after '*' ({command.checksum[:12]!r}): Marlin drops everything from "
            "the first '*' (it reads it as a checksum)"
        )
    if command.line_number is not None or command.checksum is not None:
        own = " ".join(part for part in (
            command.line_number, None if command.checksum is None else "*" + command.checksum,
        ) if part)
        raise ProgramError(
            f"line {line_no}: the line carries its own line number or checksum ({own}); the "
            "agent numbers and checksums every line itself: remove them",
            code="blocked_instruction",
            line=line_no,
        )


def read_params(command: MarlinLine, line_no: int) -> tuple[tuple[str, str | None], ...]:
    """The (letter, value) parameters of ``command`` (value None: a bare letter).

    Raises invalid_program for anything Marlin might read otherwise (see the module's notes).
    """
    rest = command.rest
    if rest and rest[0] not in _SPACE and not rest[0].isalpha():
        raise _invalid(line_no, f"cannot read {rest[:12]!r} after {command.name}")
    params: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    pos = 0
    while pos < len(rest):
        c = rest[pos]
        if c in _SPACE:
            pos += 1
            continue
        if not ("A" <= c.upper() <= "Z"):
            raise _invalid(
                line_no, f"cannot read {rest[pos:pos + 12]!r} (a letter and an optional number "
                "are expected)"
            )
        letter = c.upper()
        if letter in "GM":
            raise _invalid(
                line_no, f"{letter!r} after {command.name}: Marlin runs one command per line"
            )
        if letter == "N":
            raise _invalid(line_no, f"'N' after {command.name}: line numbers belong to the agent")
        if letter in seen:
            raise _invalid(
                line_no, f"{letter} given twice (Marlin builds differ on which one counts)"
            )
        seen.add(letter)
        pos += 1
        while pos < len(rest) and rest[pos] in _SPACE:
            pos += 1
        m = _VALUE.match(rest, pos)
        value: str | None = None
        if m is not None:
            value = m.group(0).lstrip("+")
            pos = m.end()
            after = rest[pos:pos + 1]
            if after in ("E", "e", "X", "x"):
                raise _invalid(
                    line_no, f"{letter}{m.group(0)}{after}: Marlin builds differ on whether "
                    "this is one number (exponent or hex) or two parameters; put a space"
                )
            if after and after not in _SPACE and not after.isalpha():
                raise _invalid(
                    line_no, f"cannot read the number in {rest[m.start() - 1:pos + 6]!r}"
                )
        elif pos < len(rest) and rest[pos] not in _SPACE and not rest[pos].isalpha():
            raise _invalid(line_no, f"cannot read {rest[pos - 1:pos + 6]!r}")
        params.append((letter, value))
    return tuple(params)


def canonical(command: MarlinLine, params: tuple[tuple[str, str | None], ...]) -> str:
    """The line the agent sends: upper case, no leading zeros, one space between words."""
    words = [command.name, *(letter + (value or "") for letter, value in params)]
    return " ".join(words)
