"""Issue 14 through the whole agent: a pause during a heat-up holds the moves queued behind it.

Real Mosquitto, the agent on its event loop, the planner over MQTT, the Marlin emulator on a pty
(instant wire). The job heats the hot end (``M109 S150``, a few emulated seconds) then makes two
moves. Before the fix both moves were sent behind the M109 and ran after the heat-up, pause or
not; now the window holds at the M109, so they are still on the station when the pause comes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.broker import Broker
from tests.support.rig import marlin_rig

pytestmark = pytest.mark.timeout(90)

PROGRAM = "M109 S150\nG1 X10 Y10 F3000\nG1 X20 Y10\n"


def moves(executed: list[str]) -> list[str]:
    return [line for line in executed if line.startswith("G1")]


@pytest.mark.parametrize("advanced_ok", [False, True], ids=["counted-oks", "advanced-ok"])
async def test_pause_during_heat_up_then_cancel_never_runs_the_moves(
    tmp_path: Path, broker: Broker, advanced_ok: bool
) -> None:
    # 22 -> 150 C at 40 C/s: about 3.2 s of heat-up.
    async with marlin_rig(tmp_path, broker, latency_s=0.005, advanced_ok=advanced_ok,
                          heating_rate_c_s=40.0) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "heat-1", "kind": "gcode", "program": PROGRAM})
        await planner.wait_event("heat-1", "started")
        await planner.wait_for(lambda: "M109 S150" in emulator.executed, 10, "M109")
        # Paused mid heat-up: warmer than the room, short of the target.
        await rig.eventually(lambda: emulator.hotend.current > 40, "heating under way")
        assert emulator.hotend.current < 140
        await planner.command("pause", request_id="p1")
        paused = await planner.wait_event("heat-1", "paused")
        assert paused["detail"]["lines_done"] == 0
        # The heat-up ends while paused; the moves must not follow it.
        await planner.wait_for(lambda: emulator.hotend.current >= 149, 10, "heated")
        await asyncio.sleep(1.0)
        assert moves(emulator.executed) == []
        # Neither line was sent: they are not even in the board's buffers.
        assert not any("G1" in line for line in emulator.log)
        await planner.command("cancel", request_id="c1")
        end = await planner.wait_terminal("heat-1", timeout=30)
        assert end["event"] == "canceled", end
        await asyncio.sleep(0.3)
    assert moves(emulator.executed) == []
    assert "M104 S0" in emulator.executed  # the cancel sequence ran
    assert emulator.rx_overflows == 0
