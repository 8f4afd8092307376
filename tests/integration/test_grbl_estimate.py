"""The ``accepted`` event carries the job's machine time, planned with the machine's own ``$$``.

The estimate's accuracy against real GRBL 1.1h is bench/estimate_grbl.py's (grbl-sim); here the
point is the wiring: the driver reads ``$$`` at connection, the station plans the job with those
figures (not defaults), and a job is never refused or held up for want of an estimate.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.estimate import estimate_grbl_seconds
from agent.estimate.planner import MachineLimits
from agent.garments import knife_gcode, tshirt_pieces
from tests.support.broker import Broker
from tests.support.rig import grbl_rig

pytestmark = pytest.mark.timeout(180)


async def test_accepted_carries_the_estimate_from_the_machines_own_settings(
        tmp_path: Path, broker: Broker) -> None:
    program = knife_gcode(tshirt_pieces()[:1], feed_mm_min=6000)
    async with grbl_rig(tmp_path, broker, latency_s=0.001, start_agent=False) as rig:
        # A machine tuned away from GRBL's defaults: the estimate must use these.
        for key, value in {110: 9000.0, 111: 7000.0, 112: 900.0, 120: 350.0, 121: 250.0,
                           122: 80.0, 11: 0.02, 12: 0.004}.items():
            rig.emulator.settings.values[key] = value
        await rig.start_agent()
        planner = rig.planner
        await planner.submit({"job_id": "SO-2001-front", "kind": "gcode", "program": program})
        end = await planner.wait_terminal("SO-2001-front", timeout=120)
    assert end["event"] == "succeeded", end
    accepted = planner.events_for("SO-2001-front")[0]
    assert accepted["event"] == "accepted"
    limits = MachineLimits((9000.0, 7000.0, 900.0), (350.0, 250.0, 80.0), 0.02)
    expected = estimate_grbl_seconds(program.splitlines(), limits, arc_tolerance_mm=0.004)
    assert accepted["detail"]["estimated_s"] == pytest.approx(expected, abs=0.05)
    assert "$110-$122" in accepted["detail"]["estimate_basis"]
    events = planner.events_for("SO-2001-front")
    started = next(e for e in events if e["event"] == "started")
    assert started["detail"]["estimated_s"] == accepted["detail"]["estimated_s"]
    progress = [e["detail"] for e in events if e["event"] == "progress"]
    assert progress[-1]["remaining_s"] == 0.0
    assert all(p["elapsed_s"] >= 0 for p in progress)
    remaining = [p["remaining_s"] for p in progress]
    assert remaining == sorted(remaining, reverse=True)
    succeeded = events[-1]
    assert succeeded["detail"]["estimated_s"] == accepted["detail"]["estimated_s"]
    # With GRBL's defaults the figure would differ: the machine's settings were used.
    defaults = MachineLimits((500.0, 500.0, 500.0), (10.0, 10.0, 10.0), 0.01)
    assert abs(estimate_grbl_seconds(program.splitlines(), defaults) - expected) > 1.0
