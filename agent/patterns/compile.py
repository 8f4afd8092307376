"""A pattern job in, the machine's program out: read the DXF, pick the size and pieces, map
layers to operations, place the pieces on the bed, and compile them as a toolpaths job (blade
offset, overcut, passes and order come from agent/toolpaths/).

Layers to operations (what the machine cannot do is listed in ``detail["skipped"]``):
cut line (1) and internal cut-outs (11): cut, inside out; notches (4, 80-83): a slit of
``notch_depth_mm`` along the boundary's inward normal (notches drawn as lines: cut as drawn);
drill holes (13): a 4 mm cross drawn where the machine draws (pen, laser), else skipped (no
station profile has a punch tool yet); internal (8) and sew lines (14, 84): drawn where the
machine draws, else skipped. The profile's ``[toolpath.pattern]`` changes these (notch depth
and operation, draw/score/skip per feature). Grain line (7): orientation only; annotation
text (15): skipped (labels are not drawn). Mirror line (6): the piece is unfolded about it
(cut line joined with its reflection, features reflected).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry import Polygon

from agent.dialects.program import Program
from agent.errors import ProgramError
from agent.patterns.chain import oriented
from agent.patterns.dxf import read_dxf
from agent.patterns.model import XY, PatternError, PatternFile, Piece
from agent.patterns.nest import NestItem, nest, turn_points
from agent.profiles import Profile
from agent.schemas.job import JobKind, JobRequest
from agent.schemas.pattern import Placement
from agent.schemas.toolpaths import Operation, Path, Toolpaths
from agent.toolpaths.compiler import compile_for_target
from agent.toolpaths.target import MachineTarget, target_for

# Piece copies placed in one job (placement time grows with each).
MAX_COPIES = 300


@dataclass
class PatternPlan:
    """The internal toolpaths job and what the station reports about it."""

    job: JobRequest
    detail: dict[str, Any]
    outlines: dict[str, list[XY]] = field(default_factory=dict)  # key -> placed boundary
    # key -> degrees the piece was turned from the file (grain alignment plus placement turn)
    turns: dict[str, float] = field(default_factory=dict)


def compile_pattern(job: JobRequest, profile: Profile) -> Program:
    target = target_for(profile)
    plan = plan_pattern(job, target)
    program = compile_for_target(plan.job, target)
    return Program(program.lines, program.source_lines, detail={"pattern": plan.detail})


class PatternProgramError(ProgramError):
    """A pattern job's file is at fault; ``where`` names the block, layer or entity."""

    def __init__(self, message: str, *, code: str, where: str | None) -> None:
        super().__init__(message, code=code)
        self.where = where


def _error(exc: PatternError) -> ProgramError:
    where = f" ({exc.where})" if exc.where else ""
    return PatternProgramError(f"{exc.message}{where}", code=exc.code, where=exc.where)


def load_pattern(job: JobRequest) -> PatternFile:
    source = job.pattern
    assert source is not None
    try:
        data = base64.b64decode(source.data_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProgramError(f"pattern.data_b64 is not base64: {exc}", code="bad_pattern") from None
    try:
        return read_dxf(data, units=source.units.value, tolerance_mm=source.chain_tolerance_mm)
    except PatternError as exc:
        raise _error(exc) from None


def plan_pattern(job: JobRequest, target: MachineTarget) -> PatternPlan:
    if job.kind is not JobKind.PATTERN or job.pattern is None:
        raise ProgramError("not a pattern job", code="unsupported_kind")
    source = job.pattern
    placement = job.placement or Placement()
    pattern = load_pattern(job)
    chosen = _select(pattern, source.size, source.pieces)
    copies = sum(n for _, n in chosen)
    if copies > MAX_COPIES:
        raise ProgramError(f"{copies} piece copies in one job; at most {MAX_COPIES}",
                           code="invalid_job")
    defaults = target.settings.pattern
    marks, reasons = feature_ops(target)
    notch_op = Operation(defaults.notch_op)
    if notch_op not in target.settings.ops:
        notch_op = Operation.CUT
    notch_depth = source.notch_depth_mm or defaults.notch_depth_mm
    chosen = [(unfold(piece), n) for piece, n in chosen]
    items, frames = marker_items(chosen, placement)
    result = nest(items, target.limits.width_mm, target.limits.height_mm,
                  spacing=placement.spacing_mm, margin=placement.margin_mm,
                  step=placement.step_mm)
    if result.unplaced:
        names = ", ".join(result.unplaced[:20])
        raise ProgramError(
            f"{len(result.unplaced)} piece(s) do not fit on the {target.limits.width_mm:g} x "
            f"{target.limits.height_mm:g} mm bed beside the others: {names}",
            code="out_of_bounds")
    by_key = {p.key: p for p in result.placed}
    paths: list[Path] = []
    outlines: dict[str, list[XY]] = {}
    turns: dict[str, float] = {}
    for item, (piece, align) in zip(items, frames, strict=True):
        spot = by_key[item.key]

        def place(points: list[XY], spot_: Any = spot, align_: float = align) -> list[XY]:
            turned = turn_points(_rotate(points, align_), spot_.turn)
            return [(x + spot_.dx, y + spot_.dy) for x, y in turned]

        outline = place(piece.boundary)
        outlines[item.key] = outline
        turns[item.key] = (align + spot.turn) % 360.0
        paths.append(_path(outline, Operation.CUT, closed=True))
        paths += [_path(place(ring), Operation.CUT, closed=True) for ring in piece.cutouts]
        for notch in piece.notches:
            paths.append(_path(place(_slit(piece.boundary, notch, notch_depth)), notch_op))
        paths += [_path(place(line), notch_op) for line in piece.notch_lines]
        drill = marks.get("drill_holes")
        if drill is not None:
            d = defaults.drill_mark_mm / 2
            for x, y in piece.drills:
                paths.append(_path(place([(x - d, y), (x + d, y)]), drill))
                paths.append(_path(place([(x, y - d), (x, y + d)]), drill))
        for feature, lines in (("internal_lines", piece.internal), ("sew_lines", piece.sew)):
            op = marks.get(feature)
            if op is not None:
                paths += [_path(place(line), op) for line in lines]
    internal = JobRequest(
        job_id=job.job_id, kind=JobKind.TOOLPATHS,
        toolpaths=Toolpaths(paths=paths), meta=job.meta,
    )
    detail: dict[str, Any] = {
        "size": source.size,
        "units": pattern.units,
        "units_from": pattern.units_from,
        "pieces": [{"name": p.name, "copies": n} for p, n in chosen],
        "utilisation": round(result.utilisation, 4),
        "used_length_mm": round(result.used_length_mm, 1),
        "grain_axis": placement.grain_axis,
        "skipped": skipped_features([p for p, n in chosen for _ in range(n)], reasons),
    }
    return PatternPlan(internal, detail, outlines, turns)


def unfold(piece: Piece) -> Piece:
    """A piece drawn as one half with a mirror line (layer 6), made whole: its cut line joined
    with its reflection, every feature reflected too (those on the line itself once)."""
    if piece.mirror is None:
        return piece
    (ax, ay), (bx, by) = piece.mirror
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    where = f"block {piece.block}, layer 6"
    if length2 < 1e-12:
        raise PatternProgramError("the mirror line has no length", code="bad_pattern",
                                  where=where)

    def reflect(p: XY) -> XY:
        t = ((p[0] - ax) * dx + (p[1] - ay) * dy) / length2
        fx, fy = ax + t * dx, ay + t * dy
        return (2 * fx - p[0], 2 * fy - p[1])

    def on_line(p: XY) -> bool:
        return math.dist(p, reflect(p)) < 0.02

    half = Polygon(piece.boundary)
    whole = shapely.union(half, Polygon([reflect(p) for p in piece.boundary]), grid_size=1e-4)
    if not isinstance(whole, Polygon) or whole.area < half.area * 1.5:
        raise PatternProgramError(
            "the cut line does not lie along its mirror line: unfolding gives no single piece",
            code="bad_pattern", where=where)
    ring = [(float(x), float(y)) for x, y in whole.exterior.coords[:-1]]

    def points(pts: list[XY]) -> list[XY]:
        return pts + [reflect(p) for p in pts if not on_line(p)]

    def lines(group: list[list[XY]]) -> list[list[XY]]:
        return group + [[reflect(p) for p in line] for line in group
                        if not all(on_line(p) for p in line)]

    return dataclasses.replace(
        piece, boundary=oriented(ring, ccw=True), mirror=None,
        cutouts=piece.cutouts + [oriented([reflect(p) for p in r], ccw=False)
                                 for r in piece.cutouts],
        notches=points(piece.notches), notch_lines=lines(piece.notch_lines),
        drills=points(piece.drills), internal=lines(piece.internal), sew=lines(piece.sew))


def marker_items(chosen: list[tuple[Piece, int]], placement: Placement
                 ) -> tuple[list[NestItem], list[tuple[Piece, float]]]:
    """One item per copy, its outline turned so the grain line lies along the placement's
    axis; with each, its piece and that turn (degrees)."""
    items: list[NestItem] = []
    frames: list[tuple[Piece, float]] = []
    turns = (0, 90, 180, 270) if placement.allow_rotate_90 else (0, 180)
    counts: dict[str, int] = {}
    for piece, copies in chosen:
        align = _grain_turn(piece, placement.grain_axis)
        ring = _rotate(piece.boundary, align)
        label = piece.name if len({p.size for p, _ in chosen}) == 1 else (
            f"{piece.name}/{piece.size}")
        for _ in range(copies):
            counts[label] = counts.get(label, 0) + 1
            items.append(NestItem(f"{label}#{counts[label]}", ring, turns))
            frames.append((piece, align))
    return items, frames


def feature_ops(target: MachineTarget) -> tuple[dict[str, Operation], dict[str, str]]:
    """For drill holes, internal and sew lines: the operation the machine uses for each, or
    why it leaves them out (the profile's [toolpath.pattern] choice, if the machine has it)."""
    defaults = target.settings.pattern
    ops: dict[str, Operation] = {}
    reasons: dict[str, str] = {}
    for feature in ("drill_holes", "internal_lines", "sew_lines"):
        choice = getattr(defaults, feature)
        if choice == "skip":
            reasons[feature] = f"{target.name}'s profile skips them ([toolpath.pattern])"
        elif Operation(choice) not in target.settings.ops:
            tool = "no pen, laser or punch tool" if choice == "draw" else "no scoring"
            reasons[feature] = f"{target.name} has {tool} (no '{choice}' operation)"
        else:
            ops[feature] = Operation(choice)
    return ops, reasons


def skipped_features(pieces: list[Piece], reasons: dict[str, str]) -> dict[str, Any]:
    """What of ``pieces`` (one entry per copy) the machine leaves out, counted, with why."""
    skipped: dict[str, dict[str, Any]] = {}

    def skip(feature: str, count: int, why: str) -> None:
        if count:
            entry = skipped.setdefault(feature, {"count": 0, "why": why})
            entry["count"] += count

    for piece in pieces:
        counts = {"drill_holes": len(piece.drills), "internal_lines": len(piece.internal),
                  "sew_lines": len(piece.sew)}
        for feature, why in reasons.items():
            skip(feature, counts[feature], why)
        skip("annotations", piece.annotations, "text labels are not drawn by this station")
        for key, count in piece.ignored.items():
            skip(f"other:{key}", count, "not a cutting layer (construction or unknown)")
    return skipped


def _select(pattern: PatternFile, size: str, wanted: Any) -> list[tuple[Piece, int]]:
    of_size = [p for p in pattern.pieces if p.size.casefold() == size.casefold()]
    if not of_size:
        raise ProgramError(f"size {size!r} is not in the pattern (sizes: "
                           f"{', '.join(pattern.sizes())[:200]})", code="bad_pattern")
    if wanted is None:
        return [(p, p.quantity or 1) for p in of_size]
    by_name = {p.name.casefold(): p for p in of_size}
    chosen = []
    for sel in wanted:
        piece = by_name.get(sel.name.casefold())
        if piece is None:
            names = ", ".join(p.name for p in of_size)
            raise ProgramError(f"piece {sel.name!r} is not in size {size} (pieces: "
                               f"{names[:200]})", code="bad_pattern")
        chosen.append((piece, sel.copies or piece.quantity or 1))
    return chosen


def _grain_turn(piece: Piece, axis: str) -> float:
    """Degrees that turn the piece's grain line onto the bed axis (0 without a grain line)."""
    if piece.grain is None:
        return 0.0
    (x1, y1), (x2, y2) = piece.grain
    angle = math.degrees(math.atan2(y2 - y1, x2 - x1))
    goal = 0.0 if axis == "x" else 90.0
    return goal - angle


def _rotate(points: list[XY], deg: float) -> list[XY]:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return [(x * c - y * s, x * s + y * c) for x, y in points]


def _slit(ring: list[XY], at: XY, depth: float) -> list[XY]:
    """From the boundary point nearest ``at``, ``depth`` mm along the inward normal (the ring
    is counter-clockwise, so inward is to the left of each edge)."""
    best = (math.inf, at, (0.0, 1.0))
    n = len(ring)
    for i in range(n):
        (x1, y1), (x2, y2) = ring[i], ring[(i + 1) % n]
        dx, dy = x2 - x1, y2 - y1
        length2 = dx * dx + dy * dy
        if length2 == 0:
            continue
        t = max(0.0, min(1.0, ((at[0] - x1) * dx + (at[1] - y1) * dy) / length2))
        px, py = x1 + t * dx, y1 + t * dy
        d = math.hypot(at[0] - px, at[1] - py)
        if d < best[0]:
            length = math.sqrt(length2)
            best = (d, (px, py), (-dy / length, dx / length))
    _, (px, py), (nx, ny) = best
    return [(px, py), (px + nx * depth, py + ny * depth)]


def _path(points: list[XY], op: Operation, *, closed: bool = False) -> Path:
    pts = [(round(x, 4), round(y, 4)) for x, y in points]
    return Path(points=pts, closed=closed, op=op)
