"""The job preview: an SVG of what the machine will do, read back from the compiled program.

Drawn from the machine lines, not from the planner's paths, so what the operator sees is what
the knife, pen or beam will follow: cuts in order (numbered at their start), travels dashed,
the bed outline, machine Y pointing up.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from pydantic import ValidationError

from agent.errors import ConfigError, ProgramError
from agent.profiles import Profile, format_validation_error, load_profile
from agent.schemas.job import JobKind, JobRequest
from agent.toolpaths.compiler import compile_for_target
from agent.toolpaths.parse_back import parse_for_target
from agent.toolpaths.strokes import Stroke, StrokeKind
from agent.toolpaths.target import target_for


def render_preview_svg(job: JobRequest, profile: Profile) -> str:
    """Compile ``job`` for ``profile``, read the program back and draw it; raises ProgramError."""
    target = target_for(profile)
    if job.kind is JobKind.PATTERN:
        # A pattern job is previewed as the toolpaths the station makes of it (placed pieces).
        from agent.patterns.compile import plan_pattern

        job = plan_pattern(job, target).job
    program = compile_for_target(job, target)
    strokes = parse_for_target(program.lines, target)
    title = f"{job.job_id} on {profile.name} ({len(program.lines)} lines)"
    return render_strokes_svg(strokes, (profile.bed.width_mm, profile.bed.height_mm), title)


def render_strokes_svg(strokes: Sequence[Stroke], bed_mm: tuple[float, float], title: str) -> str:
    width, height = bed_mm
    # Text and line widths follow the bed's size so a label printer and a cutting table both read.
    font = max(2.0, min(width, height) / 80.0)
    margin = 2.0 * font
    header = 3.0 * font
    cut_len = sum(_length(s.points) for s in strokes if s.kind is StrokeKind.CUT)
    travel_len = sum(_length(s.points) for s in strokes if s.kind is StrokeKind.TRAVEL)
    cuts = [s for s in strokes if s.kind is StrokeKind.CUT]
    view_w = width + 2 * margin
    view_h = height + 2 * margin + header

    def y_of(y: float) -> float:  # machine Y up, SVG Y down
        return header + margin + height - y

    def x_of(x: float) -> float:
        return margin + x

    def pts(points: Sequence[tuple[float, float]]) -> str:
        return " ".join(f"{x_of(x):.3f},{y_of(y):.3f}" for x, y in points)

    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{view_w:g}mm" height="{view_h:g}mm" '
        f'viewBox="0 0 {view_w:g} {view_h:g}">',
        f"<title>{escape(title)}</title>",
        '<rect x="0" y="0" width="100%" height="100%" fill="white"/>',
        f'<text x="{margin:g}" y="{font * 2.0:.2f}" font-family="sans-serif" '
        f'font-size="{font * 1.6:.2f}">{escape(title)}: {len(cuts)} cuts, '
        f"cut {cut_len / 1000:.2f} m, travel {travel_len / 1000:.2f} m</text>",
        f'<rect class="bed" x="{x_of(0):g}" y="{y_of(height):g}" width="{width:g}" '
        f'height="{height:g}" fill="none" stroke="#1f4e79" stroke-width="{font / 4:.2f}"/>',
        f'<g class="travels" fill="none" stroke="#999999" stroke-width="{font / 8:.2f}" '
        f'stroke-dasharray="{font / 2:.2f} {font / 2:.2f}">',
    ]
    out += [f'<polyline points="{pts(s.points)}"/>' for s in strokes if s.kind is StrokeKind.TRAVEL]
    out.append("</g>")
    out.append(f'<g class="cuts" fill="none" stroke="#c00000" stroke-width="{font / 5:.2f}">')
    for n, s in enumerate(cuts, start=1):
        info = f"cut {n}, line {s.line}"
        if s.speed_mm_s is not None:
            info += f", {s.speed_mm_s:g} mm/s"
        if s.power_pct is not None:
            info += f", {s.power_pct:.0f} %"
        # A laser's weaker passes (engraving, scoring) are drawn lighter.
        shade = (
            "" if s.power_pct is None else f' stroke-opacity="{0.3 + 0.7 * s.power_pct / 100:.2f}"'
        )
        out.append(
            f'<polyline points="{pts(s.points)}"{shade}><title>{escape(info)}</title></polyline>'
        )
    out.append("</g>")
    out.append(f'<g class="order" font-family="sans-serif" font-size="{font:.2f}" fill="#000080">')
    for n, s in enumerate(cuts, start=1):
        x, y = s.points[0]
        out.append(
            f'<circle cx="{x_of(x):.3f}" cy="{y_of(y):.3f}" r="{font / 4:.2f}"/>'
            f'<text x="{x_of(x) + font / 3:.3f}" y="{y_of(y) - font / 3:.3f}">{n}</text>'
        )
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _length(points: Sequence[tuple[float, float]]) -> float:
    return sum(math.dist(a, b) for a, b in itertools.pairwise(points))


def preview_main(argv: Sequence[str] | None = None) -> int:
    """``preview JOB.json --profile NAME -o preview.svg``.

    Exit status: 0 written, 1 the job would be rejected, 2 bad input.
    """
    parser = argparse.ArgumentParser(
        prog="station-agent preview",
        description="Draw what a toolpaths or pattern job will make a machine do, before fabric "
        "is cut.",
    )
    parser.add_argument("job", type=Path, help="the job, as JSON")
    parser.add_argument("--profile", required=True, help="firmware profile name or TOML path")
    parser.add_argument("-o", "--output", type=Path, default=Path("preview.svg"))
    args = parser.parse_args(argv)
    try:
        job = JobRequest.model_validate_json(args.job.read_bytes())
        profile = load_profile(args.profile)
        svg = render_preview_svg(job, profile)
    except OSError as exc:
        print(f"error io_error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"error invalid_job: {format_validation_error(exc)}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"error {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    except ProgramError as exc:
        print(f"error {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    args.output.write_text(svg, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0
