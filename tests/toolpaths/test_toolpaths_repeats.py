"""Copies and passes that would cut the same place twice are refused unless the job asks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ProgramError
from agent.profiles import load_profile
from agent.profiles.toolpath import ToolpathSettings
from agent.schemas.job import JobRequest
from agent.toolpaths import compile_toolpaths, plan_for_target, target_for
from tests.support.broker import Broker
from tests.support.rig import grbl_rig
from tests.toolpaths.garments import care_label_paths, path

KNIFE = load_profile("grbl-knife")
LASER = load_profile("grbl-laser")
VINYL = load_profile("roland-camm-gl3")

LABEL = [(0.0, 0.0), (40.0, 0.0), (40.0, 25.0), (0.0, 25.0)]
NOTCH = [(0.0, 0.0), (0.0, 6.0)]  # a line with no width: copies side by side stack up


def toolpaths_job(paths: list[dict[str, Any]], *, repeat: bool | None = None,
                  settings: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    toolpaths: dict[str, Any] = {"units": "mm", "paths": paths, "settings": settings or {}}
    if repeat is not None:
        toolpaths["repeat_same_place"] = repeat
    data: dict[str, Any] = {"job_id": "rep-0001", "kind": "toolpaths", "toolpaths": toolpaths,
                            "origin_mm": [10.0, 10.0]}
    data.update(extra)
    return data


def request(data: dict[str, Any]) -> JobRequest:
    return JobRequest.model_validate_json(json.dumps(data))


def refusal(data: dict[str, Any], profile: Any) -> ProgramError:
    with pytest.raises(ProgramError) as caught:
        compile_toolpaths(request(data), profile)
    return caught.value


@pytest.mark.parametrize("profile", [KNIFE, LASER, VINYL], ids=lambda p: p.name)
def test_copies_without_spacing_share_their_edges_and_are_refused(profile: Any) -> None:
    data = toolpaths_job([path(LABEL)], copies=3, spacing_mm=0)
    err = refusal(data, profile)
    assert err.code == "overlapping_copies"
    assert "copies 1 and 2" in err.message
    assert "repeat_same_place" in err.message
    # Asked for explicitly, the same job compiles.
    compiled = compile_toolpaths(request(toolpaths_job([path(LABEL)], repeat=True, copies=3,
                                                       spacing_mm=0)), profile)
    assert compiled.lines


def test_a_thousand_copies_of_a_line_with_no_width_are_refused() -> None:
    data = toolpaths_job([path(NOTCH, closed=False)], copies=1000, spacing_mm=0)
    err = refusal(data, KNIFE)
    assert err.code == "overlapping_copies"
    # With the explicit field they are laid out as asked: all on the one line.
    allowed = request(toolpaths_job([path(NOTCH, closed=False)], repeat=True, copies=5,
                                    spacing_mm=0))
    plan = plan_for_target(allowed, target_for(KNIFE))
    # (the order may cut some of them in the other direction)
    assert len({frozenset(p.tip) for p in plan}) == 1 and len(plan) == 5


def test_copies_closer_than_one_machine_unit_count_as_touching() -> None:
    # 0.01 mm apart is 0.4 HP-GL units: the plotter would cut the same line.
    close = toolpaths_job([path(LABEL)], copies=2, spacing_mm=0.01)
    assert refusal(close, VINYL).code == "overlapping_copies"
    # A G-code knife resolves 0.001 mm: 0.01 mm apart are two lines there.
    assert compile_toolpaths(request(close), KNIFE).lines


def test_spaced_copies_and_single_copies_are_unaffected() -> None:
    labels = toolpaths_job(care_label_paths(), copies=40, spacing_mm=4.0,
                           origin_mm=[5.0, 5.0])
    plan = plan_for_target(request(labels), target_for(LASER))
    assert {p.copy for p in plan} == set(range(40))
    one = toolpaths_job([path(NOTCH, closed=False)], copies=1, spacing_mm=0)
    assert compile_toolpaths(request(one), KNIFE).lines


@pytest.mark.parametrize("profile", [KNIFE, VINYL], ids=lambda p: p.name)
def test_several_passes_on_a_knife_are_refused_unless_asked(profile: Any) -> None:
    on_job = toolpaths_job([path(LABEL)], settings={"passes": 3})
    err = refusal(on_job, profile)
    assert err.code == "repeated_passes"
    assert "3 passes" in err.message
    on_path = toolpaths_job([path(LABEL), path(LABEL, passes=2)])
    on_path["toolpaths"]["paths"][1]["points"] = [[x + 100, y] for x, y in LABEL]
    err = refusal(on_path, profile)
    assert err.code == "repeated_passes"
    assert err.message.startswith("path 1:")
    allowed = request(toolpaths_job([path(LABEL)], repeat=True, settings={"passes": 3}))
    plan = plan_for_target(allowed, target_for(profile))
    assert [len(p.routes) for p in plan] == [3]


def test_several_passes_are_normal_on_a_laser() -> None:
    deep = request(toolpaths_job([path(LABEL)], settings={"passes": 3}))
    plan = plan_for_target(deep, target_for(LASER))
    assert [len(p.routes) for p in plan] == [3]


def test_a_profile_can_mark_passes_normal_or_not() -> None:
    knife = KNIFE.toolpath
    assert knife is not None and not knife.multi_pass_normal
    data = knife.model_dump()
    assert ToolpathSettings.model_validate({**data, "multi_pass": True}).multi_pass_normal
    # A knife profile whose default is several passes must say they are normal.
    with pytest.raises(ValueError, match="multi_pass"):
        ToolpathSettings.model_validate({**data, "passes": 2})
    laser = LASER.toolpath
    assert laser is not None and laser.multi_pass_normal
    assert not ToolpathSettings.model_validate(
        {**laser.model_dump(), "multi_pass": False}).multi_pass_normal


async def test_overlapping_copies_are_rejected_over_mqtt_and_run_when_asked(
        tmp_path: Path, broker: Broker) -> None:
    refused = toolpaths_job([path(LABEL)], copies=4, spacing_mm=0, job_id="labels-x4")
    allowed = toolpaths_job([path(LABEL)], repeat=True, copies=2, spacing_mm=0,
                            job_id="labels-x2-asked")
    passes = toolpaths_job([path(LABEL)], settings={"passes": 2}, job_id="label-2-passes")
    async with grbl_rig(tmp_path, broker, profile="grbl-knife") as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit(refused)
        await planner.submit(passes)
        await planner.submit(allowed)
        first = await planner.wait_terminal("labels-x4")
        second = await planner.wait_terminal("label-2-passes")
        third = await planner.wait_terminal("labels-x2-asked", timeout=120)
    assert first["event"] == "rejected"
    assert first["detail"]["error"]["code"] == "overlapping_copies"
    assert second["event"] == "rejected"
    assert second["detail"]["error"]["code"] == "repeated_passes"
    assert third["event"] == "succeeded", third
    compiled = compile_toolpaths(request(allowed), KNIFE)
    assert emulator.executed == [*compiled.lines, "G4P0"]
