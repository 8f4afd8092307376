"""G-code text handling shared by the GRBL and Marlin dialects."""

from __future__ import annotations

import re
from collections.abc import Iterator

from agent.errors import ProgramError

_PAREN_COMMENT = re.compile(r"\([^()]*\)")
# A word: one letter then a number (GRBL and Marlin both accept a sign and a decimal point).
WORD = re.compile(r"([A-Z])([+-]?(?:\d+\.?\d*|\.\d+))")


def strip_comment(raw: str, line_no: int) -> str:
    """The line without ``(...)`` and ``;`` comments; an unclosed ``(`` is an error."""
    text = raw
    semi = text.find(";")
    if semi >= 0:
        text = text[:semi]
    if "(" in text or ")" in text:
        text = _PAREN_COMMENT.sub("", text)
        if "(" in text or ")" in text:
            raise ProgramError(f"line {line_no}: unbalanced parenthesis comment", line=line_no)
    return text


def iter_program_lines(program: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, raw line) for every line; CR, LF and CRLF all end a line."""
    yield from enumerate(program.splitlines(), start=1)


def check_printable(raw: str, line_no: int) -> None:
    for ch in raw:
        code = ord(ch)
        if code < 0x20 and ch != "\t":
            raise ProgramError(
                f"line {line_no}: control character 0x{code:02x} in program", line=line_no
            )
        if code > 0x7E:
            raise ProgramError(
                f"line {line_no}: non-ASCII character {ch!r} in program", line=line_no
            )


def split_words(line: str, line_no: int) -> list[tuple[str, str]]:
    """The (letter, number) words of a normalised line; anything else is an error."""
    words: list[tuple[str, str]] = []
    pos = 0
    while pos < len(line):
        m = WORD.match(line, pos)
        if m is None:
            raise ProgramError(
                f"line {line_no}: cannot parse {line[pos:pos + 12]!r} (a letter and a number "
                "are expected)",
                line=line_no,
            )
        words.append((m.group(1), m.group(2)))
        pos = m.end()
    return words
