"""Read an AAMA/ASTM D6673 pattern DXF (per-size piece blocks) into :class:`PatternFile`.

One BLOCK per piece and size, annotated by TEXT "Piece Name: ...", "Size: ...",
"Quantity: ..."; geometry on numbered layers (see REFERENCE: 1 boundary, 4/80-83 notches,
6 mirror line, 7 grain line, 8 internal lines, 11 internal cut-outs, 13 drill holes, 14/84 sew
lines, 15 annotation). Graded "rule" files (a base size plus grade rules) are refused with
``unsupported_pattern``. Anything broken is a PatternError naming where.

Units (``auto``): a "UNITS: METRIC|ENGLISH" note in the file wins (ASTM exporters write one),
then a non-zero $INSUNITS (1 in, 4 mm, 5 cm), else inches, the AAMA convention.
"""

from __future__ import annotations

import io
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agent.patterns.chain import chain_segments, oriented, without_near_repeats
from agent.patterns.model import XY, PatternError, PatternFile, Piece
from agent.toolpaths.geometry import polygon_area

MAX_DXF_BYTES = 9 * 1024 * 1024
MAX_ENTITIES = 200_000
MAX_BLOCKS = 5_000
MAX_POINTS = 500_000
# Chord tolerance for arcs, bulges and splines, in mm.
FLATTEN_MM = 0.05

MM_PER_UNIT = {"mm": 1.0, "cm": 10.0, "in": 25.4}
_INSUNITS = {1: "in", 4: "mm", 5: "cm"}

BOUNDARY = "1"
MIRROR = "6"
GRAIN = "7"
INTERNAL = "8"
CUTOUT = "11"
DRILL = "13"
ANNOTATION = "15"
NOTCH_LAYERS = frozenset({"4", "80", "81", "82", "83"})
SEW_LAYERS = frozenset({"14", "84"})
# Construction layers: turn/curve points and grade references, used by pattern CAD only.
CONSTRUCTION = frozenset({"2", "3", "5"})

_NOTE = re.compile(r"^\s*(piece name|name|size|quantity|qty|units|rule|sample size|"
                   r"grade rule table|category|annotation)\s*:\s*(.*?)\s*$", re.IGNORECASE)


def read_dxf(data: bytes, *, units: str = "auto", tolerance_mm: float = 0.1) -> PatternFile:
    """Parse ``data``; raises PatternError (codes bad_pattern, unsupported_pattern)."""
    if len(data) > MAX_DXF_BYTES:
        raise PatternError(f"the DXF is {len(data)} bytes; at most {MAX_DXF_BYTES}")
    doc = _load(data)
    unit, unit_from = _units(doc, units)
    scale = MM_PER_UNIT[unit]
    blocks = [b for b in doc.blocks if not b.name.startswith("*")]
    if len(blocks) > MAX_BLOCKS:
        raise PatternError(f"{len(blocks)} blocks; at most {MAX_BLOCKS}")
    total = sum(len(b) for b in blocks) + len(doc.modelspace())
    if total > MAX_ENTITIES:
        raise PatternError(f"{total} entities; at most {MAX_ENTITIES}")
    _refuse_rule_files(doc, blocks)
    layers: Counter[str] = Counter()
    pieces: list[Piece] = []
    budget = [MAX_POINTS]
    for block in blocks:
        piece = _read_block(block, scale, tolerance_mm, layers, budget)
        if piece is not None:
            pieces.append(piece)
    if not pieces:
        raise PatternError("no piece blocks: no BLOCK carries a 'Piece Name:' note and a "
                           "boundary on layer 1", where="BLOCKS")
    return PatternFile(unit, unit_from, str(doc.dxfversion), pieces, dict(layers))


def _load(data: bytes) -> Any:
    try:
        from ezdxf import recover
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise PatternError(f"ezdxf is not installed: {exc}") from None
    head = data[:4096].lstrip()
    if not (head.startswith((b"0", b"999", b"AutoCAD Binary DXF"))):
        raise PatternError("not a DXF file (it does not start with a group code)", where="byte 0")
    try:
        if data.startswith(b"AutoCAD Binary DXF"):
            from ezdxf.document import Drawing
            from ezdxf.lldxf.tagger import binary_tags_loader

            doc = Drawing.load(binary_tags_loader(data))
            auditor = doc.audit()
        else:
            doc, auditor = recover.read(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - a third-party parser on untrusted input
        raise PatternError(f"unreadable DXF: {type(exc).__name__}: {exc}"[:300],
                           where="file") from None
    if auditor.has_errors:
        first = auditor.errors[0]
        raise PatternError(f"broken DXF: {first.message}"[:300],
                           where=str(getattr(first, "entity", None) or "file")[:100])
    return doc


def _units(doc: Any, requested: str) -> tuple[str, str]:
    if requested != "auto":
        return requested, "job"
    for text in doc.modelspace().query("TEXT"):
        match = _NOTE.match(str(text.dxf.text))
        if match and match.group(1).lower() == "units":
            value = match.group(2).lower()
            if value.startswith("metric"):
                return "mm", "UNITS note (METRIC)"
            if value.startswith("english"):
                return "in", "UNITS note (ENGLISH)"
    code = int(doc.header.get("$INSUNITS", 0) or 0)
    if code in _INSUNITS:
        return _INSUNITS[code], f"$INSUNITS {code}"
    return "in", "AAMA default (no UNITS note, no $INSUNITS)"


def _notes(entities: Any) -> dict[str, str]:
    notes: dict[str, str] = {}
    for e in entities:
        if e.dxftype() not in ("TEXT", "MTEXT"):
            continue
        raw = e.dxf.text if e.dxftype() == "TEXT" else e.plain_text()
        match = _NOTE.match(str(raw))
        if match:
            notes.setdefault(match.group(1).lower(), match.group(2))
    return notes


def _refuse_rule_files(doc: Any, blocks: list[Any]) -> None:
    for where, entities in [("ENTITIES", doc.modelspace())] + [(f"block {b.name}", b)
                                                               for b in blocks]:
        notes = _notes(entities)
        if "rule" in notes or "grade rule table" in notes or "sample size" in notes:
            raise PatternError(
                "a graded rule file (base size plus grade rules); this station reads only "
                "per-size block files: export every size as its own blocks",
                code="unsupported_pattern", where=where)


def _read_block(block: Any, scale: float, tol_mm: float, layers: Counter[str],
                budget: list[int]) -> Piece | None:
    """One AAMA piece block: its notes name it; layer 1 is its cut line, layer 11 cut-outs."""
    piece = _piece_header(block)
    if piece is None:
        return None
    where = f"block {block.name}"
    outlines = _Outlines()
    for e in block:
        layer = str(e.dxf.layer).strip()
        layers[layer] += 1
        _take_entity(e, layer, piece, outlines, scale, budget)
    if not outlines.boundary:
        raise PatternError(f"piece {piece.name!r} size {piece.size} has no boundary on layer 1",
                           where=where)
    rings = _rings(outlines.boundary, tol_mm, f"{where}, layer 1")
    rings.sort(key=lambda r: -polygon_area(r))
    piece.boundary = oriented(rings[0], ccw=True)
    piece.cutouts = [oriented(r, ccw=False) for r in rings[1:]]
    piece.cutouts += [oriented(r, ccw=False)
                      for r in _rings(outlines.cutouts, tol_mm, f"{where}, layer 11")]
    return piece


@dataclass
class _Outlines:
    """A piece's cut line and cut-out parts as read, before they are chained into rings."""

    boundary: list[list[XY]] = field(default_factory=list)
    cutouts: list[list[XY]] = field(default_factory=list)


def _piece_header(block: Any) -> Piece | None:
    """The piece's name, size and quantity from its "Piece Name:" / "Size:" / "Quantity:"
    notes; None for a block that names no piece (a title block, a symbol)."""
    notes = _notes(block)
    name = notes.get("piece name") or notes.get("name")
    if not name:
        return None
    where = f"block {block.name}"
    size = notes.get("size", "").strip()
    if not size:
        raise PatternError(f"piece {name!r} has no 'Size:' note", where=where)
    quantity: int | None = None
    text = (notes.get("quantity") or notes.get("qty") or "").strip()
    if text:
        if not text.isdigit() or not 1 <= int(text) <= 100:
            raise PatternError(f"'Quantity: {text[:20]}' is not a whole number 1..100",
                               where=where)
        quantity = int(text)
    return Piece(block.name, name.strip(), size, quantity, [])


_CURVES = frozenset({"LINE", "LWPOLYLINE", "POLYLINE", "ARC", "CIRCLE", "SPLINE", "ELLIPSE"})


def _take_entity(e: Any, layer: str, piece: Piece, outlines: _Outlines, scale: float,
                 budget: list[int]) -> None:
    """File one entity of a piece block by its AAMA layer; what no layer rule uses is counted
    as ignored (reported in the pattern's info, never silently dropped)."""
    kind = e.dxftype()
    at = f"block {piece.block}, layer {layer}, {kind} #{e.dxf.handle}"
    if kind in ("TEXT", "MTEXT", "ATTDEF", "ATTRIB"):
        if not _NOTE.match(str(e.dxf.text if kind != "MTEXT" else e.plain_text())):
            piece.annotations += 1
    elif kind == "POINT":
        _take_point(_xy(e.dxf.location, scale, at), kind, layer, piece)
    elif kind == "CIRCLE" and layer == DRILL:
        piece.drills.append(_xy(e.dxf.center, scale, at))
    elif kind not in _CURVES or layer in CONSTRUCTION:
        _ignore(piece, kind, layer)
    else:
        points = _flatten(e, scale, at)
        budget[0] -= len(points)
        if budget[0] < 0:
            raise PatternError(f"more than {MAX_POINTS} points after flattening curves",
                               where=at)
        _take_line(points, kind, layer, piece, outlines)


def _take_point(loc: XY, kind: str, layer: str, piece: Piece) -> None:
    if layer in NOTCH_LAYERS:
        piece.notches.append(loc)
    elif layer == DRILL:
        piece.drills.append(loc)
    else:
        _ignore(piece, kind, layer)


def _take_line(points: list[XY], kind: str, layer: str, piece: Piece,
               outlines: _Outlines) -> None:
    if layer == BOUNDARY:
        outlines.boundary.append(points)
    elif layer == CUTOUT:
        outlines.cutouts.append(points)
    elif layer in NOTCH_LAYERS:
        piece.notch_lines.append(points)
    elif layer == INTERNAL:
        piece.internal.append(points)
    elif layer in SEW_LAYERS:
        piece.sew.append(points)
    elif layer == GRAIN:
        piece.grain = (points[0], points[-1])
    elif layer == MIRROR:
        piece.mirror = (points[0], points[-1])
    else:
        _ignore(piece, kind, layer)


def _rings(parts: list[list[XY]], tol_mm: float, where: str) -> list[list[XY]]:
    rings = []
    for chain in chain_segments(parts, tol_mm):
        if not chain.closed:
            x, y = chain.points[-1]
            raise PatternError(
                f"the line does not close: a gap of {chain.gap:.3f} mm at ({x:.2f}, {y:.2f}) mm "
                f"(chain tolerance {tol_mm:g} mm)", where=where)
        if len(chain.points) < 3 or polygon_area(chain.points) < 1e-6:
            raise PatternError("a closed line with no area", where=where)
        rings.append(chain.points)
    return rings


def _ignore(piece: Piece, kind: str, layer: str) -> None:
    key = f"{kind}@{layer}"
    piece.ignored[key] = piece.ignored.get(key, 0) + 1


def _xy(v: Any, scale: float, at: str) -> XY:
    x, y = float(v[0]) * scale, float(v[1]) * scale
    if not (math.isfinite(x) and math.isfinite(y)) or max(abs(x), abs(y)) > 100_000:
        raise PatternError("a coordinate is not finite or lies beyond 100 m", where=at)
    return (x, y)


def _flatten(e: Any, scale: float, at: str) -> list[XY]:
    from ezdxf import path as ezpath

    try:
        p = ezpath.make_path(e)
        vertices = list(p.flattening(FLATTEN_MM / scale, segments=4))
    except Exception as exc:  # noqa: BLE001 - ezdxf on untrusted geometry
        raise PatternError(f"unreadable geometry: {type(exc).__name__}: {exc}"[:200],
                           where=at) from None
    out = without_near_repeats([_xy(v, scale, at) for v in vertices])
    if len(out) < 2:
        raise PatternError("a line with no length", where=at)
    return out
