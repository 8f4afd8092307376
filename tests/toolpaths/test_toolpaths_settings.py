"""The [toolpath] profile section: shipped profiles load, bad sections are refused at load."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ConfigError, ProgramError
from agent.jobs.prepare import prepare_program
from agent.profiles import load_profile, parse_profile, resolve_profile_path
from agent.profiles.toolpath import HpglVariant, LiftMethod, MachineKind
from agent.toolpaths import compile_toolpaths, target_for
from agent.toolpaths.target import Dialect, limits_for
from tests.toolpaths.garments import job, tshirt_paths


def profile_data(name: str) -> dict[str, Any]:
    return tomllib.loads(Path(resolve_profile_path(name)).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("name", "machine", "dialect"),
    [
        ("grbl-laser", MachineKind.LASER, Dialect.GRBL),
        ("grbl-knife", MachineKind.DRAG_KNIFE, Dialect.GRBL),
        ("hpgl-7475a", MachineKind.PEN, Dialect.HPGL),
        ("roland-camm-gl3", MachineKind.DRAG_KNIFE, Dialect.HPGL),
        ("marlin-2", MachineKind.DRAG_KNIFE, Dialect.MARLIN),
    ],
)
def test_shipped_profiles_take_toolpaths(name: str, machine: MachineKind, dialect: Dialect) -> None:
    profile = load_profile(name)
    assert profile.toolpath is not None
    assert profile.toolpath.machine is machine
    assert target_for(profile).dialect is dialect


def test_shipped_profile_details() -> None:
    laser = load_profile("grbl-laser").toolpath
    knife = load_profile("grbl-knife").toolpath
    plotter = load_profile("hpgl-7475a").toolpath
    vinyl = load_profile("roland-camm-gl3").toolpath
    assert laser is not None
    assert laser.laser is not None
    assert laser.laser.s_max == 1000
    assert laser.laser.dynamic_power
    assert knife is not None
    assert knife.lift is not None
    assert knife.knife is not None
    assert knife.lift.method is LiftMethod.Z
    assert knife.knife.blade_offset_mm == 0.25
    assert plotter is not None
    assert plotter.hpgl is not None
    assert plotter.hpgl.variant is HpglVariant.HP7475A
    assert not plotter.hpgl.force_select
    assert plotter.units_per_mm == 40
    assert vinyl is not None
    assert vinyl.hpgl is not None
    assert vinyl.hpgl.variant is HpglVariant.CAMM_GL3
    assert vinyl.hpgl.force_select


def with_toolpath(name: str, **changes: Any) -> dict[str, Any]:
    data = profile_data(name)
    section = dict(data["toolpath"])
    for key, value in changes.items():
        if value is None:
            section.pop(key, None)
        else:
            section[key] = value
    data["toolpath"] = section
    return data


@pytest.mark.parametrize(
    ("name", "changes", "fragment"),
    [
        ("grbl-knife", {"blade_offest_mm": 0.3}, "toolpath.blade_offest_mm"),
        ("grbl-knife", {"knife": {"blade_offset_mm": 0.25, "overcutt_mm": 1}}, "overcutt_mm"),
        ("grbl-knife", {"knife": {"blade_offset_mm": 9.0}}, "blade_offset_mm"),
        ("grbl-knife", {"knife": None}, "drag knives"),
        ("grbl-knife", {"lift": None}, "lift"),
        ("grbl-knife", {"lift": {"z_up_mm": 1.0, "z_down_mm": 2.0}}, "z_down_mm"),
        ("grbl-knife", {"units_per_mm": 40}, "units_per_mm"),
        ("grbl-knife", {"machine": "router"}, "machine"),
        ("grbl-knife", {"speed_mm_s": 300.0}, "max_speed_mm_s"),
        ("grbl-laser", {"laser": None}, "lasers"),
        ("grbl-laser", {"laser": {"s_max": 0}}, "s_max"),
        ("grbl-laser", {"power_pct": 120.0}, "power_pct"),
        ("grbl-laser", {"ops": {"engrave": {}}}, "ops"),
        ("hpgl-7475a", {"lift": {"method": "z"}}, "PU/PD"),
        ("hpgl-7475a", {"hpgl": {"variant": "hp7595"}}, "variant"),
        ("roland-camm-gl3", {"hpgl": {"fs_min": 300, "fs_max": 250}}, "fs_min"),
    ],
)
def test_bad_toolpath_sections_are_refused_at_load(
    name: str, changes: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_profile(with_toolpath(name, **changes), source=name)
    assert fragment in str(caught.value)


def test_a_profile_without_a_toolpath_section_takes_no_toolpaths_jobs() -> None:
    profile = load_profile("grbl-1.1")
    assert profile.toolpath is None
    with pytest.raises(ProgramError) as caught:
        compile_toolpaths(job(tshirt_paths()), profile)
    assert caught.value.code == "unsupported_kind"


def test_hpgl_settings_in_a_gcode_profile_are_refused_when_compiling() -> None:
    data = profile_data("grbl-knife")
    vinyl = profile_data("roland-camm-gl3")["toolpath"]
    data["toolpath"] = vinyl
    profile = parse_profile(data, source="mixed")
    with pytest.raises(ProgramError) as caught:
        compile_toolpaths(job(tshirt_paths()), profile)
    assert caught.value.code == "unsupported_kind"


def test_prepare_program_compiles_toolpaths_jobs() -> None:
    profile = load_profile("grbl-knife")
    tee = job(tshirt_paths())
    assert prepare_program(tee, profile) == compile_toolpaths(tee, profile)


def test_hpgl_reach_limits_the_bed() -> None:
    settings = load_profile("roland-camm-gl3").toolpath
    assert settings is not None
    limits = limits_for(584.0, 2000.0, settings)
    assert limits.width_mm == 584.0
    assert limits.height_mm == pytest.approx(32767 / 40)
    assert limits.unit_mm == 0.025
    assert limits_for(584.0, 2000.0, settings, 20000).height_mm == 500.0


def test_pens_beyond_the_device_are_refused() -> None:
    data = profile_data("hpgl-7475a")
    data["toolpath"]["tools"] = {"marker-red": 7}  # the 7475A carousel holds 6
    profile = parse_profile(data, source="seven-pens")
    with pytest.raises(ProgramError) as caught:
        compile_toolpaths(job(tshirt_paths()), profile)
    assert caught.value.code == "unsupported_kind"
    assert "pen 7" in caught.value.message
