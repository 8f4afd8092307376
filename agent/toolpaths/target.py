"""What compiling toolpaths needs to know about a station's machine, taken from its profile."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent.errors import ProgramError
from agent.profiles import Profile
from agent.profiles.toolpath import ToolpathSettings
from agent.toolpaths.bounds import BedLimits

UNSUPPORTED = "unsupported_kind"
# Marlin's MAX_CMD_SIZE is 96 including the terminator.
_MARLIN_LINE_CHARS = 95
_HPGL_LINE_CHARS = 80


class Dialect(StrEnum):
    GRBL = "grbl"
    MARLIN = "marlin"
    HPGL = "hpgl"


@dataclass(frozen=True)
class MachineTarget:
    name: str
    dialect: Dialect
    settings: ToolpathSettings
    limits: BedLimits
    max_line_chars: int


def target_for(profile: Profile) -> MachineTarget:
    """Raise ProgramError(unsupported_kind) when the profile takes no toolpaths."""
    settings = profile.toolpath
    if settings is None:
        raise ProgramError(
            f"profile {profile.name} does not take toolpaths jobs (no [toolpath] section)",
            code=UNSUPPORTED,
        )
    family = str(profile.family)
    try:
        dialect = Dialect(family)
    except ValueError:
        raise ProgramError(
            f"no toolpath compiler for the {family} family ({profile.name})", code=UNSUPPORTED
        ) from None
    if (dialect is Dialect.HPGL) != (settings.hpgl is not None):
        raise ProgramError(
            f"profile {profile.name}: [toolpath.hpgl] belongs in, and only in, HP-GL profiles",
            code=UNSUPPORTED,
        )
    family_section = getattr(profile, dialect.value, None)
    _check_pens(profile.name, settings, getattr(family_section, "max_pen", None))
    # The family's own limit (the HP-GL driver's [hpgl] max_coordinate) also binds the compiler.
    family_reach = getattr(family_section, "max_coordinate", None)
    return MachineTarget(
        name=profile.name,
        dialect=dialect,
        settings=settings,
        limits=limits_for(
            profile.bed.width_mm,
            profile.bed.height_mm,
            settings,
            family_reach if isinstance(family_reach, int) else None,
        ),
        max_line_chars=_max_line_chars(profile, dialect),
    )


def _check_pens(name: str, settings: ToolpathSettings, max_pen: object) -> None:
    """Pens the compiler may select must exist on the device (the HP-GL driver's max_pen)."""
    if settings.hpgl is None or not isinstance(max_pen, int):
        return
    pens = {settings.hpgl.pen, *settings.tools.values()}
    if max(pens) > max_pen:
        raise ProgramError(
            f"profile {name}: [toolpath] selects pen {max(pens)}, the device has {max_pen}",
            code=UNSUPPORTED,
        )


def limits_for(
    width_mm: float,
    height_mm: float,
    settings: ToolpathSettings,
    max_coordinate: int | None = None,
) -> BedLimits:
    """The bed, cut down to the largest coordinate an HP-GL device takes."""
    unit = 1.0 / settings.units_per_mm
    if settings.hpgl is not None:
        reach_units = settings.hpgl.max_coordinate
        if max_coordinate is not None:
            reach_units = min(reach_units, max_coordinate)
        width_mm = min(width_mm, reach_units * unit)
        height_mm = min(height_mm, reach_units * unit)
    return BedLimits(width_mm=width_mm, height_mm=height_mm, unit_mm=unit)


def _max_line_chars(profile: Profile, dialect: Dialect) -> int:
    # Family sections are named after the family (profile.grbl, profile.marlin); read it if there.
    section = getattr(profile, dialect.value, None)
    chars = getattr(section, "max_line_chars", None)
    if isinstance(chars, int):
        return chars
    return _MARLIN_LINE_CHARS if dialect is Dialect.MARLIN else _HPGL_LINE_CHARS
