"""SVG jobs (kind ``svg``): an SVG drawing read with svgelements in the validating worker,
its shapes, paths and transforms flattened to polylines within ``tolerance_mm``, each mapped to
an operation by its nearest enclosing group id or its stroke colour, and compiled as a toolpaths
job (copies, spacing, origin and rotation as for toolpaths jobs).

Coordinates: the drawing's own units (CSS pixels, 96 per inch, unless the root's width/height
and viewBox give real units) become millimetres, times ``scale``; Y is turned up, the
drawing's bottom edge at the job's origin. Documents with a DTD or entities are refused, as are
more than MAX_ELEMENTS elements or nesting deeper than MAX_DEPTH.
"""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET
from typing import Any

from agent.dialects.program import Program
from agent.errors import ProgramError
from agent.patterns.compile import PatternProgramError
from agent.profiles import Profile
from agent.schemas.job import JobKind, JobRequest
from agent.schemas.pattern import SvgSource
from agent.schemas.toolpaths import Operation, Path, Toolpaths
from agent.toolpaths.compiler import compile_for_target
from agent.toolpaths.target import target_for

MAX_ELEMENTS = 50_000
MAX_DEPTH = 32
MAX_POINTS = 1_000_000
_MM_PER_PX = 25.4 / 96.0

XY = tuple[float, float]


def _bad(message: str, where: str | None = None) -> PatternProgramError:
    suffix = f" ({where})" if where else ""
    return PatternProgramError(f"{message}{suffix}", code="bad_pattern", where=where)


def _precheck(text: str) -> None:
    head = text[:4096].lower()
    if "<!doctype" in head or "<!entity" in text.lower():
        raise _bad("SVG with a DTD or entities is not accepted", "prolog")
    parser: Any = ET.XMLPullParser(events=("start", "end"))
    depth = count = 0
    try:
        for start in range(0, len(text), 65536):
            parser.feed(text[start : start + 65536])
            for event, _ in parser.read_events():
                if event == "start":
                    depth += 1
                    count += 1
                    if depth > MAX_DEPTH:
                        raise _bad(f"elements nested deeper than {MAX_DEPTH}",
                                   f"element {count}")
                    if count > MAX_ELEMENTS:
                        raise _bad(f"more than {MAX_ELEMENTS} elements", f"element {count}")
                else:
                    depth -= 1
        parser.close()
    except ET.ParseError as exc:
        raise _bad(f"not well-formed XML: {exc}", f"line {exc.position[0]}") from None


def read_svg(source: SvgSource) -> tuple[list[tuple[list[XY], bool, str, str]], float]:
    """Subpaths in mm (Y down, before flipping): (points, closed, colour, group id), and the
    drawing's height in mm."""
    _precheck(source.data)
    import svgelements as se

    try:
        svg = se.SVG.parse(io.StringIO(source.data), reify=True)
    except Exception as exc:  # noqa: BLE001 - a third-party parser on untrusted input
        raise _bad(f"unreadable SVG: {type(exc).__name__}: {exc}"[:300], "document") from None
    if not isinstance(svg, se.SVG):
        raise _bad("the root element is not <svg>", "document")
    k = _MM_PER_PX * source.scale
    tol_px = source.tolerance_mm / k
    out: list[tuple[list[XY], bool, str, str]] = []
    budget = [MAX_POINTS]
    index = [0]

    def walk(group: Any, group_id: str) -> None:
        for element in group:
            index[0] += 1
            if isinstance(element, se.Group):
                gid = element.id if isinstance(element.id, str) and element.id else group_id
                walk(element, gid)
                continue
            if not isinstance(element, se.Shape) or isinstance(element, se.Text):
                continue
            where = f"element {index[0]}" + (f" id {element.id}" if element.id else "")
            stroke = element.stroke
            colour = (stroke.hex[:7].lower() if stroke is not None and stroke.value is not None
                      else "none")
            try:
                flat = [_flatten(se.Path(sub), tol_px, se)
                        for sub in se.Path(element).as_subpaths()]
            except Exception as exc:  # noqa: BLE001 - svgelements on untrusted geometry
                raise _bad(f"unreadable shape: {type(exc).__name__}: {exc}"[:200],
                           where) from None
            for pts, closed in flat:
                if len(pts) < 2:
                    continue
                budget[0] -= len(pts)
                if budget[0] < 0:
                    raise _bad(f"more than {MAX_POINTS} points after flattening", where)
                mm = [(x * k, y * k) for x, y in pts]
                if not all(math.isfinite(x) and math.isfinite(y) and abs(x) < 1e5
                           and abs(y) < 1e5 for x, y in mm):
                    raise _bad("a coordinate is not finite or beyond 100 m", where)
                out.append((mm, closed, colour, group_id))

    walk(svg, "")
    height = float(svg.height) * k if svg.height else 0.0
    return out, height


def _flatten(path: Any, tol: float, se: Any) -> tuple[list[XY], bool]:
    pts: list[XY] = []
    closed = False
    for seg in path:
        if isinstance(seg, se.Move):
            if seg.end is not None:
                pts.append((float(seg.end.x), float(seg.end.y)))
        elif isinstance(seg, se.Close):
            closed = True
        elif isinstance(seg, se.Line):
            pts.append((float(seg.end.x), float(seg.end.y)))
        else:
            pts.extend(_curve(seg, 0.0, 1.0, tol, 0))
    if closed and len(pts) > 1 and math.dist(pts[0], pts[-1]) < 1e-9:
        pts.pop()
    deduped: list[XY] = []
    for p in pts:
        if not deduped or math.dist(deduped[-1], p) > 1e-9:
            deduped.append(p)
    if closed and len(deduped) < 3:
        closed = False
    return deduped, closed


def _curve(seg: Any, t0: float, t1: float, tol: float, depth: int) -> list[XY]:
    """Points after t0 up to t1, halving until the curve's midpoint lies within ``tol`` of
    the chord (at least twice, so an S-curve is never taken for a line)."""
    a = seg.point(t0)
    b = seg.point(t1)
    tm = (t0 + t1) / 2
    m = seg.point(tm)
    ax, ay, bx, by = float(a.x), float(a.y), float(b.x), float(b.y)
    mx, my = float(m.x), float(m.y)
    chord = math.hypot(bx - ax, by - ay)
    if chord < 1e-12:
        err = math.hypot(mx - ax, my - ay)
    else:
        err = abs((bx - ax) * (ay - my) - (ax - mx) * (by - ay)) / chord
    if depth >= 2 and (err <= tol or depth >= 16):
        return [(bx, by)]
    return _curve(seg, t0, tm, tol, depth + 1) + _curve(seg, tm, t1, tol, depth + 1)


def svg_toolpaths(job: JobRequest) -> tuple[JobRequest, dict[str, Any]]:
    source = job.svg
    if job.kind is not JobKind.SVG or source is None:
        raise ProgramError("not an svg job", code="unsupported_kind")
    shapes, height = read_svg(source)
    if height <= 0 and shapes:
        height = max(y for pts, *_ in shapes for _, y in pts)
    paths: list[Path] = []
    skipped: dict[str, int] = {}
    ops: dict[str, int] = {}
    for pts, closed, colour, group_id in shapes:
        op = source.layers.get(group_id) if group_id else None
        if op is None:
            op = source.layers.get(colour, source.default_op)
        if op == "skip":
            key = group_id or colour
            skipped[key] = skipped.get(key, 0) + 1
            continue
        flipped = [(round(x, 4), round(height - y, 4)) for x, y in pts]
        if len(set(flipped)) < (3 if closed else 2):
            continue
        paths.append(Path(points=flipped, closed=closed, op=Operation(op)))
        ops[op] = ops.get(op, 0) + 1
    if not paths:
        raise _bad("nothing to cut: no shape maps to an operation", "document")
    internal = job.model_copy(update={"kind": JobKind.TOOLPATHS, "svg": None,
                                      "toolpaths": Toolpaths(paths=paths)})
    detail: dict[str, Any] = {"paths": ops, "height_mm": round(height, 3)}
    if skipped:
        detail["skipped"] = {"count": sum(skipped.values()), "layers": skipped,
                             "why": "mapped to 'skip'"}
    return internal, detail


def compile_svg(job: JobRequest, profile: Profile) -> Program:
    target = target_for(profile)
    internal, detail = svg_toolpaths(job)
    program = compile_for_target(internal, target)
    return Program(program.lines, program.source_lines, detail={"svg": detail})
