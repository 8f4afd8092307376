"""An HP-GL job published on MQTT is plotted by an emulated HP 7475A over a real pty."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.dialects.hpgl import prepare_hpgl_program
from tests.hpgl.plots import graded_nest, sleeve_pattern
from tests.hpgl.rig import hpgl_profile
from tests.support.broker import Broker
from tests.support.rig import hpgl_rig

pytestmark = pytest.mark.timeout(120)


async def test_sleeve_pattern_job_is_plotted_exactly(tmp_path: Path, broker: Broker) -> None:
    text, expected = sleeve_pattern()
    lines = prepare_hpgl_program(text, hpgl_profile()).lines
    async with hpgl_rig(tmp_path, broker, baud=115_200, pen_speed_mm_s=1500.0) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "tee-110-sleeve", "kind": "hpgl",
                              "program": text})
        end = await planner.wait_terminal("tee-110-sleeve", timeout=60)
        assert end["event"] == "succeeded", end
    assert [(s.pen, s.points) for s in emulator.strokes] == expected
    assert emulator.overflow_errors == 0
    progress = [e["detail"] for e in planner.events_for("tee-110-sleeve")
                if e["event"] == "progress"]
    assert progress[-1]["lines_done"] == len(lines)


async def test_bad_hpgl_is_rejected_with_its_line(tmp_path: Path, broker: Broker) -> None:
    async with hpgl_rig(tmp_path, broker, baud=115_200, latency_s=0.0) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "bad-1", "kind": "hpgl",
                              "program": "IN;SP1;\nPU0,0;\nPD20000,0;\n"})
        end = await planner.wait_terminal("bad-1", timeout=30)
    assert end["event"] == "rejected", end
    assert end["detail"]["error"]["code"] == "out_of_bounds"
    assert end["detail"]["error"]["line"] == 3
    assert emulator.bytes_received < 200  # nothing of the job reached the plotter


async def test_cancel_over_mqtt_stops_the_plotter(tmp_path: Path, broker: Broker) -> None:
    text, expected = graded_nest(sizes=(110, 116))
    async with hpgl_rig(tmp_path, broker, baud=115_200, pen_speed_mm_s=200.0) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "nest-1", "kind": "hpgl", "program": text})
        await planner.wait_event("nest-1", "started")
        await planner.wait_for(lambda: emulator.instructions_run > 200, 30, "plotting")
        await planner.command("cancel", request_id="c1")
        end = await planner.wait_terminal("nest-1", timeout=30)
        assert end["event"] == "canceled", end
        await planner.wait_for(lambda: emulator.starved, 10, "plotter stopped")
        assert not emulator.pen_down
        assert emulator.pen == 0
    assert len(emulator.strokes) < len(expected)
    assert emulator.overflow_errors == 0
