"""GRBL's line pre-parser: bytes from the receive buffer to one normalised line at a time.

This is protocol.c ``protocol_main_loop``'s character filter (the same rules as
:func:`agent.reading.grbl.preprocess`, fed one byte at a time): GRBL reads its receive
buffer into an 80-byte line buffer, dropping every byte at or below space (whitespace and
control characters), ``/`` wherever it stands (block delete is not supported, the character is
ignored), ``(...)`` comments and ``;`` comments (inside ``(...)`` a ``;`` means nothing), and
upper-casing ``a``-``z``; every other byte (DEL included) is kept. Both CR and LF end a line, so
a host that sends CRLF gets two answers per line (the second for an empty line). A line that
keeps more than 79 characters sets an overflow flag and is answered ``error:11`` when it ends.
"""

from __future__ import annotations

from dataclasses import dataclass

LINE_BUFFER_SIZE = 80


@dataclass(frozen=True)
class AssembledLine:
    raw: str  # what arrived, decoded as Latin-1 so every byte survives, without the terminator
    text: str  # normalised like GRBL's pre-parser
    overflow: bool


class LineAssembler:
    """Feeds one byte at a time; returns a line when a terminator arrives."""

    def __init__(self) -> None:
        self._raw = bytearray()
        self._kept: list[str] = []
        self._in_parentheses = False
        self._in_semicolon = False
        self._overflow = False

    def reset(self) -> None:
        self._raw = bytearray()
        self._kept = []
        self._in_parentheses = False
        self._in_semicolon = False
        self._overflow = False

    @property
    def pending(self) -> bool:
        """True while part of a line has been read but not its end."""
        return bool(self._raw)

    def feed(self, byte: int) -> AssembledLine | None:
        if byte in (0x0A, 0x0D):
            line = AssembledLine(
                raw=self._raw.decode("latin-1"),
                text="".join(self._kept),
                overflow=self._overflow,
            )
            self.reset()
            return line
        self._raw.append(byte)
        char = chr(byte)
        if self._in_parentheses or self._in_semicolon:
            # A ')' ends a parenthesised comment; a ';' comment runs to the end of the line.
            if char == ")" and not self._in_semicolon:
                self._in_parentheses = False
        elif byte <= 0x20 or char == "/":
            pass
        elif char == "(":
            self._in_parentheses = True
        elif char == ";":
            self._in_semicolon = True
        elif len(self._kept) >= LINE_BUFFER_SIZE - 1:
            self._overflow = True
        else:
            self._kept.append(char.upper() if "a" <= char <= "z" else char)
        return None
