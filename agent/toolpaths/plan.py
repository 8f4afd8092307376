"""From a toolpaths job to the ordered paths the tool will follow, in bed millimetres.

Steps: validate against the machine, settle each path's settings (path > job > profile's
operation defaults > profile), turn and place the job, lay out copies in rows, order the paths
(inside out, short travel), add overcut and blade-offset compensation for a drag knife, check
the bed. Everything here is pure: the emitters only translate the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from agent.errors import ProgramError
from agent.profiles.toolpath import MachineKind, ToolpathSettings
from agent.schemas.job import JobRequest
from agent.schemas.toolpaths import Operation, Toolpaths, ToolSettings
from agent.toolpaths.bounds import BedLimits, check_bounds
from agent.toolpaths.geometry import (
    XY,
    Polyline,
    bbox,
    blade_offset,
    close_ring,
    drop_repeats,
    last_direction,
    open_ring,
    transform,
    with_overcut,
)
from agent.toolpaths.order import OrderItem, order_paths

INVALID = "invalid_toolpaths"
OVERLAPPING_COPIES = "overlapping_copies"
REPEATED_PASSES = "repeated_passes"
_ASK = "set toolpaths.repeat_same_place: true if that is meant"


@dataclass(frozen=True)
class CutSettings:
    """What one path runs at, settled from the job and the profile."""

    speed_mm_s: float
    power_pct: float
    force_g: float
    passes: int
    z_down_mm: float | None


@dataclass(frozen=True)
class PlannedPath:
    """One path of one copy, as the tool will follow it, in bed millimetres.

    ``tip`` is the line cut into the fabric: the job's path, placed, started where the order
    chose, closed paths returning to their start and then running on by the overcut.
    ``routes`` holds, for each pass, the route the machine is told: ``tip`` itself, or for a
    drag knife the holder's axis (blade-offset compensated, starting with a swivel from where
    the previous cut left the blade).
    """

    source: int  # index of the path in the job
    copy: int
    op: Operation
    tool: str
    closed: bool
    settings: CutSettings
    routes: tuple[tuple[XY, ...], ...]
    tip: tuple[XY, ...]


@dataclass(frozen=True)
class _Piece:
    source: int
    copy: int
    points: Polyline  # closed: vertices without the repeated start
    closed: bool


def plan_toolpaths(
    job: JobRequest, settings: ToolpathSettings, limits: BedLimits, *, check_bed: bool = True
) -> list[PlannedPath]:
    """The job's paths in cutting order, in bed mm; raises ProgramError.

    ``check_bed=False`` skips only the bed check (to show an operator where a job overflows).
    """
    toolpaths = _require_toolpaths(job)
    resolved = [_settle(toolpaths, i, settings) for i in range(len(toolpaths.paths))]
    _check_size(toolpaths, resolved, job.copies, settings)
    if not toolpaths.repeat_same_place:
        _check_passes(resolved, settings)
    pieces = _place(toolpaths, job, limits.width_mm)
    if not toolpaths.repeat_same_place:
        _check_copies_apart(pieces, job, 1.0 / settings.units_per_mm)
    visits = order_paths([OrderItem(p.points, p.closed) for p in pieces])
    planned: list[PlannedPath] = []
    blade = BladeTracker(settings)
    for visit in visits:
        piece = pieces[visit.index]
        path = toolpaths.paths[piece.source]
        if piece.closed:
            ring = piece.points[visit.start :] + piece.points[: visit.start]
            tip = close_ring(ring)
        else:
            tip = list(reversed(piece.points)) if visit.reverse else list(piece.points)
        tip = _with_overcut(tip, piece.closed, settings)
        passes = resolved[piece.source].passes
        planned.append(
            PlannedPath(
                source=piece.source,
                copy=piece.copy,
                op=path.op,
                tool=path.tool,
                closed=piece.closed,
                settings=resolved[piece.source],
                routes=tuple(tuple(blade.route(tip)) for _ in range(passes)),
                tip=tuple(tip),
            )
        )
    if check_bed:
        check_bounds((route for p in planned for route in p.routes), limits)
    return planned


def _require_toolpaths(job: JobRequest) -> Toolpaths:
    if job.toolpaths is None:
        raise ProgramError(f"job {job.job_id} has no toolpaths", code=INVALID)
    for i, path in enumerate(job.toolpaths.paths):
        # The wire model rejects these; a job built in code skips it, so check again.
        if not all(math.isfinite(x) and math.isfinite(y) for x, y in path.points):
            raise ProgramError(f"path {i}: coordinates must be finite numbers", code=INVALID)
        distinct = len(drop_repeats(path.points))
        if distinct < 2 or (path.closed and len(open_ring(path.points)) < 3):
            raise ProgramError(f"path {i}: too few distinct points", code=INVALID)
    return job.toolpaths


def _settle(toolpaths: Toolpaths, index: int, settings: ToolpathSettings) -> CutSettings:
    path = toolpaths.paths[index]
    op_defaults = settings.op_defaults(path.op)
    if op_defaults is None:
        accepted = ", ".join(op.value for op in settings.ops)
        raise ProgramError(
            f"path {index}: this {settings.machine.value} does not {path.op.value} "
            f"(it does: {accepted})",
            code=INVALID,
        )
    layers: list[ToolSettings] = [path.settings or ToolSettings(), toolpaths.settings]

    def pick(name: str, fallback: float) -> float:
        for layer in layers:
            value = getattr(layer, name)
            if value is not None:
                return float(value)
        value = getattr(op_defaults, name)
        return fallback if value is None else float(value)

    speed = pick("speed_mm_s", settings.speed_mm_s)
    if speed > settings.max_speed_mm_s:
        raise ProgramError(
            f"path {index}: speed {speed:g} mm/s exceeds this machine's "
            f"{settings.max_speed_mm_s:g} mm/s",
            code=INVALID,
        )
    return CutSettings(
        speed_mm_s=speed,
        power_pct=pick("power_pct", settings.power_pct),
        force_g=pick("force_g", settings.force_g),
        passes=int(pick("passes", settings.passes)),
        z_down_mm=op_defaults.z_down_mm,
    )


def _check_size(
    toolpaths: Toolpaths, resolved: Sequence[CutSettings], copies: int, settings: ToolpathSettings
) -> None:
    total = copies * sum(
        len(p.points) * s.passes for p, s in zip(toolpaths.paths, resolved, strict=True)
    )
    if total > settings.max_points:
        raise ProgramError(
            f"{total} points after copies and passes; this machine takes at most "
            f"{settings.max_points}",
            code=INVALID,
        )


def _check_passes(resolved: Sequence[CutSettings], settings: ToolpathSettings) -> None:
    """More than one pass cuts the same line again: normal on a laser, not on a knife."""
    if settings.multi_pass_normal:
        return
    for index, cut in enumerate(resolved):
        if cut.passes > 1:
            raise ProgramError(
                f"path {index}: {cut.passes} passes would cut the same line {cut.passes} times; "
                f"this {settings.machine.value} does not repeat cuts normally: {_ASK}",
                code=REPEATED_PASSES,
            )


def _check_copies_apart(pieces: Sequence[_Piece], job: JobRequest, unit_mm: float) -> None:
    """Copies whose extents touch or overlap would cut the same place twice (with
    ``spacing_mm`` 0 neighbours share their edges; a shape with no width stacks up). Closer
    than one machine unit counts as touching: the machine cannot tell the lines apart."""
    if job.copies < 2:
        return
    boxes: dict[int, tuple[float, float, float, float]] = {}
    for piece in pieces:
        x0, y0, x1, y1 = bbox(piece.points)
        box = boxes.get(piece.copy)
        boxes[piece.copy] = (x0, y0, x1, y1) if box is None else (
            min(box[0], x0), min(box[1], y0), max(box[2], x1), max(box[3], y1))
    # Sweep along x: only boxes that start before this one ends can meet it.
    ordered = sorted(boxes.items(), key=lambda item: item[1][0])
    for i, (a, (ax0, ay0, ax1, ay1)) in enumerate(ordered):
        for b, (bx0, by0, bx1, by1) in ordered[i + 1:]:
            if bx0 - ax1 >= unit_mm:
                break
            if by0 - ay1 < unit_mm and ay0 - by1 < unit_mm:
                first, second = sorted((a, b))
                raise ProgramError(
                    f"copies {first + 1} and {second + 1} would cut the same place: their "
                    f"extents (x {ax0:g}..{ax1:g}, y {ay0:g}..{ay1:g} and x {bx0:g}..{bx1:g}, "
                    f"y {by0:g}..{by1:g} mm) touch or overlap with spacing_mm "
                    f"{job.spacing_mm:g}; give the copies room, or {_ASK}",
                    code=OVERLAPPING_COPIES,
                )


def _place(toolpaths: Toolpaths, job: JobRequest, bed_width: float) -> list[_Piece]:
    """Turn and place the job, then lay copies out in rows of ``spacing_mm`` gaps."""
    ox, oy = job.origin_mm
    placed = []
    for path in toolpaths.paths:
        pts = transform(path.points, job.rotation_deg, ox, oy)
        placed.append(open_ring(pts) if path.closed else drop_repeats(pts))
    boxes = [bbox(p) for p in placed]
    min_x = min(b[0] for b in boxes)
    min_y = min(b[1] for b in boxes)
    width = max(b[2] for b in boxes) - min_x
    height = max(b[3] for b in boxes) - min_y
    step_x = width + job.spacing_mm
    step_y = height + job.spacing_mm
    per_row = _copies_per_row(job.copies, bed_width, min_x, step_x, width)
    pieces = []
    for copy in range(job.copies):
        dx = (copy % per_row) * step_x
        dy = (copy // per_row) * step_y
        for source, (pts, path) in enumerate(zip(placed, toolpaths.paths, strict=True)):
            moved = pts if copy == 0 else [(x + dx, y + dy) for x, y in pts]
            pieces.append(_Piece(source, copy, moved, path.closed))
    return pieces


def _copies_per_row(
    copies: int, bed_width: float, min_x: float, step_x: float, width: float
) -> int:
    """As many copies side by side as the bed width allows; rows that overflow the bed's
    height are caught by the bed check."""
    if step_x <= 0.0:
        return copies
    fit = int((bed_width - min_x - width) // step_x) + 1
    return max(1, min(copies, fit))


def _with_overcut(tip: Polyline, closed: bool, settings: ToolpathSettings) -> Polyline:
    knife = settings.knife
    if not closed or knife is None or settings.machine is not MachineKind.DRAG_KNIFE:
        return tip
    return with_overcut(tip, knife.overcut_mm)


class BladeTracker:
    """Routes for a drag knife, remembering which way the blade points between cuts.

    A lifted blade keeps the direction it last cut in; the next cut swivels it round from
    there. Before the first cut of a job it is taken to point along +X.
    """

    def __init__(self, settings: ToolpathSettings) -> None:
        self.knife = settings.knife if settings.machine is MachineKind.DRAG_KNIFE else None
        self.direction: XY = (1.0, 0.0)

    def route(self, tip: Polyline) -> Polyline:
        knife = self.knife
        if knife is None:
            return tip
        route = blade_offset(
            tip,
            knife.blade_offset_mm,
            knife.corner_threshold_deg,
            knife.swivel_step_deg,
            entry_direction=self.direction,
        )
        self.direction = last_direction(tip) or self.direction
        return route
