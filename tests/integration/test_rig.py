"""The rigs themselves: an emulator that crashes fails the test with its own error at once (not
as the planner's timeout), and each family's rig brings a station online."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.broker import Broker
from tests.support.eventually import TaskEndedError
from tests.support.rig import grbl_rig, hpgl_rig, marlin_rig

pytestmark = pytest.mark.timeout(60)

LABEL = "G21 G90\nG0 X10 Y10\nG1 X50 Y10 F1200\n"


async def test_an_emulator_crash_is_raised_by_the_planners_wait(tmp_path: Path,
                                                               broker: Broker) -> None:
    async with grbl_rig(tmp_path, broker) as rig:
        def broken_report() -> str:
            raise RuntimeError("status report bug")

        rig.emulator._status_report = broken_report  # type: ignore[method-assign]
        with pytest.raises(TaskEndedError, match="emulator-cutter-01") as caught:
            # The wait's limit is far away: only the crash can end it this early.
            await rig.planner.wait_status("never-a-state", timeout=50)
        # The emulator's own error (out of its task group), not a timeout.
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert str(caught.value.__cause__) == "status report bug"


async def test_a_crash_nobody_waited_for_fails_the_test_when_the_rig_closes(
        tmp_path: Path, broker: Broker) -> None:
    async def crash_unnoticed() -> None:
        async with grbl_rig(tmp_path, broker) as rig:
            def broken_report() -> str:
                raise RuntimeError("status report bug")

            rig.emulator._status_report = broken_report  # type: ignore[method-assign]
            # The crash happens; the test body never looks at it.
            await asyncio.wait([rig.emulator_task])

    with pytest.raises(TaskEndedError, match="the end of the test"):
        await crash_unnoticed()


async def test_each_family_rig_runs_a_job(tmp_path: Path, broker: Broker) -> None:
    async with grbl_rig(tmp_path / "grbl", broker) as rig:
        await rig.planner.submit({"job_id": "g-1", "kind": "gcode", "program": LABEL})
        assert (await rig.planner.wait_terminal("g-1"))["event"] == "succeeded"
        assert rig.emulator.executed[-1] == "G4P0"
    async with marlin_rig(tmp_path / "marlin", broker) as marlin:
        one_per_line = LABEL.replace("G21 G90", "G21\nG90")  # Marlin: one command a line
        await marlin.planner.submit({"job_id": "m-1", "kind": "gcode", "program": one_per_line})
        assert (await marlin.planner.wait_terminal("m-1"))["event"] == "succeeded"
    async with hpgl_rig(tmp_path / "hpgl", broker) as plotter:
        await plotter.planner.submit({"job_id": "h-1", "kind": "hpgl",
                                      "program": "IN;SP1;PU0,0;PD400,0;PU;"})
        assert (await plotter.planner.wait_terminal("h-1"))["event"] == "succeeded"
