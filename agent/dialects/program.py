"""A validated machine program, ready to stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Program:
    """Lines to send, in order, each already in the machine's own language and normalised.

    ``source_lines[i]`` is the 1-based line of the job's program that ``lines[i]`` came from, so a
    firmware error is reported against the line the planner wrote (toolpath jobs: the line of
    the compiled program).
    """

    lines: tuple[str, ...]
    source_lines: tuple[int, ...]
    # What compiling found worth telling the planner (pattern jobs: placement, skipped
    # features), merged into the ``accepted`` event's detail; not stored with the program.
    detail: dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if len(self.lines) != len(self.source_lines):
            raise ValueError("lines and source_lines differ in length")

    def __len__(self) -> int:
        return len(self.lines)

    def source_line(self, index: int) -> int:
        """The job's line for the 0-based index of a sent line."""
        return self.source_lines[index]

    def to_text(self) -> str:
        pairs = zip(self.source_lines, self.lines, strict=True)
        return "\n".join(f"{n}\t{line}" for n, line in pairs)

    @classmethod
    def from_text(cls, text: str) -> Program:
        lines: list[str] = []
        numbers: list[int] = []
        for row in text.split("\n") if text else []:
            number, _, line = row.partition("\t")
            numbers.append(int(number))
            lines.append(line)
        return cls(tuple(lines), tuple(numbers))
