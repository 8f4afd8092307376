"""What a pattern file holds, once read: pieces in millimetres, per graded size."""

from __future__ import annotations

from dataclasses import dataclass, field

XY = tuple[float, float]


class PatternError(Exception):
    """The file cannot be used; ``where`` names the block, layer or entity at fault."""

    def __init__(self, message: str, *, code: str = "bad_pattern", where: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.where = where


@dataclass
class Piece:
    """One piece block of one size. Rings are open (no repeated start), boundary
    counter-clockwise, cut-outs clockwise; all in millimetres in the file's own frame."""

    block: str
    name: str
    size: str
    quantity: int | None
    boundary: list[XY]
    cutouts: list[list[XY]] = field(default_factory=list)
    notches: list[XY] = field(default_factory=list)  # points on the boundary
    notch_lines: list[list[XY]] = field(default_factory=list)  # notches drawn as short lines
    drills: list[XY] = field(default_factory=list)
    internal: list[list[XY]] = field(default_factory=list)  # layer 8
    sew: list[list[XY]] = field(default_factory=list)  # layers 14, 84
    grain: tuple[XY, XY] | None = None
    mirror: tuple[XY, XY] | None = None
    annotations: int = 0  # TEXT on the piece besides its name/size/quantity notes
    ignored: dict[str, int] = field(default_factory=dict)  # entity kind@layer -> count


@dataclass
class PatternFile:
    units: str  # mm, cm or in: what the file's numbers were read as
    units_from: str  # how that was decided
    dxf_version: str
    pieces: list[Piece]
    layers: dict[str, int]  # entities per layer, over all piece blocks

    def sizes(self) -> list[str]:
        seen: dict[str, None] = {}
        for piece in self.pieces:
            seen.setdefault(piece.size, None)
        return list(seen)
