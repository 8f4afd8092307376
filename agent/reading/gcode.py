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


# Characters some reader takes for the end of a line (str.splitlines, Unicode, old Macs, form
# feeds): a program carrying one would be numbered differently by us, the planner's editor and
# the firmware, so it is refused where it stands.
LINE_SEPARATORS: dict[str, str] = {
    "\r": "carriage return (CR) not followed by LF",
    "\x0b": "vertical tab (VT)",
    "\x0c": "form feed (FF)",
    "\x1c": "file separator (0x1c)",
    "\x1d": "group separator (0x1d)",
    "\x1e": "record separator (0x1e)",
    "\x85": "next line (NEL, U+0085)",
    "\u2028": "line separator (U+2028)",
    "\u2029": "paragraph separator (U+2029)",
}
_SEPARATOR = re.compile("\r(?!\n)|[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


class LineBreakError(ProgramError):
    """A character that ends a line for some readers but not for this dialect."""

    code = "bad_line_break"

    def __init__(self, message: str, *, line: int, column: int) -> None:
        super().__init__(message, line=line)
        self.column = column


def check_line_breaks(program: str, *, lone_cr_ends_line: bool = False) -> None:
    """Refuse every line separator but LF and CRLF (and a lone CR if ``lone_cr_ends_line``),
    naming its line and column (1-based) as counted with the breaks that are allowed."""
    match = _SEPARATOR.search(program)
    while match is not None and lone_cr_ends_line and match.group() == "\r":
        match = _SEPARATOR.search(program, match.end())
    if match is None:
        return
    pos = match.start()
    before = program[:pos]
    if lone_cr_ends_line:
        before = before.replace("\r\n", "\n").replace("\r", "\n")
    line = before.count("\n") + 1
    column = len(before) - before.rfind("\n")
    name = LINE_SEPARATORS[match.group()]
    raise LineBreakError(
        f"line {line}, column {column}: {name} in program; only LF and CRLF end a line"
        + (" (and CR)" if lone_cr_ends_line else ""),
        line=line,
        column=column,
    )


def iter_program_lines(program: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, raw line) for every line: LF and CRLF end a line.

    Any other line separator (a lone CR, VT, FF, 0x1c-0x1e, NEL, U+2028, U+2029) raises
    :class:`LineBreakError` (``bad_line_break``) with its line and column, before any line is
    yielded. A final line break does not start another line.
    """
    check_line_breaks(program)
    if not program:
        return
    lines = program.split("\n")
    if lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        yield number, line[:-1] if line.endswith("\r") else line


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
