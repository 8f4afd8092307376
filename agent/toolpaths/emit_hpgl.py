"""Planned paths to HP-GL for HP 7475A-class plotters and Roland CAMM-GL III cutters.

One instruction per line, each ending in ``;``: the HP-GL driver sends lines whole and can
stop between any two. Coordinates are absolute, non-negative integer plotter units; one point
per ``PD`` keeps every line short (the device buffer is small and counted in bytes).
``VS`` takes cm/s; ``FS`` (force, cutters only) takes device units from grams.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.profiles.toolpath import HpglSettings, HpglVariant
from agent.toolpaths.plan import PlannedPath
from agent.toolpaths.target import MachineTarget


def emit_hpgl(plan: Sequence[PlannedPath], target: MachineTarget) -> list[str]:
    s = target.settings
    hp = s.hpgl
    assert hp is not None  # target_for guarantees it for the HP-GL dialect
    scale = s.units_per_mm
    lines = ["IN;", "PA;"]
    pen: int | None = None
    velocity: str | None = None
    force: str | None = None
    pos: tuple[int, int] | None = None
    for path in plan:
        want_pen = s.tools.get(path.tool, hp.pen)
        if want_pen != pen:
            if pos is not None:
                lines.append("PU;")
            lines.append(f"SP{want_pen};")
            pen = want_pen
            velocity = force = None  # some devices reset VS/FS with a new pen
        vs = _velocity(path.settings.speed_mm_s, hp)
        if vs != velocity:
            lines.append(f"VS{vs};")
            velocity = vs
        if hp.force_select:
            fs = _force(path.settings.force_g, hp)
            if fs != force:
                lines.append(f"FS{fs};")
                force = fs
        for route in path.routes:
            pts = [(round(x * scale), round(y * scale)) for x, y in route]
            if pts[0] != pos:
                lines.append(f"PU{pts[0][0]},{pts[0][1]};")
            pos = pts[0]
            for p in pts[1:]:
                if p != pos:
                    lines.append(f"PD{p[0]},{p[1]};")
                    pos = p
    lines.append("PU;")
    lines.append("SP0;")  # put the pen (or tool) away
    return lines


def _velocity(speed_mm_s: float, hp: HpglSettings) -> str:
    cm_s = min(max(speed_mm_s / 10.0, hp.vs_min_cm_s), hp.vs_max_cm_s)
    if hp.variant is HpglVariant.CAMM_GL3:
        return str(max(1, round(cm_s)))  # CAMM-GL III takes whole cm/s
    return f"{cm_s:.2f}".rstrip("0").rstrip(".")


def _force(force_g: float, hp: HpglSettings) -> str:
    units = round(force_g / hp.fs_grams_per_unit)
    return str(min(max(units, hp.fs_min), hp.fs_max))
