"""The broker link on its own: no machine attached (the serial device does not exist)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.broker import Broker
from tests.support.planner import Planner
from tests.support.station import agent_config, running_agent

pytestmark = pytest.mark.timeout(60)


async def test_station_without_device_reports_offline_and_rejects_bad_jobs(
    tmp_path: Path, broker: Broker
) -> None:
    config = agent_config(tmp_path, broker, tmp_path / "no-such-tty")
    async with Planner(broker.host, broker.port) as planner, running_agent(config) as agent:
        await agent.wait_broker()
        status = await planner.wait_status("device_offline")
        assert status["station"] == "cutter-01"
        assert status["device"]["online"] is False
        await planner.publish("job", b"not json")
        rejected = await planner.wait_event(None, "rejected")
        assert rejected["detail"]["error"]["code"] == "invalid_json"
        # A valid job is accepted and waits for the machine.
        await planner.submit({"job_id": "back-7", "kind": "gcode",
                              "program": "G21\nG0 X10 Y10\n"})
        accepted = await planner.wait_event("back-7", "accepted")
        assert accepted["detail"]["lines_total"] == 2
        await planner.submit({"job_id": "back-7", "kind": "gcode", "program": "G21\n"})
        dup = await planner.wait_event("back-7", "duplicate")
        assert dup["detail"]["state"] == "queued"
        await planner.command("cancel", job_id="back-7", request_id="c1")
        canceled = await planner.wait_event("back-7", "canceled")
        assert canceled["detail"]["request_id"] == "c1"
        await planner.publish("cmd", b'{"cmd": "dance"}')
        bad_cmd = await planner.wait_for(
            lambda: [e for e in planner.events if e["event"] == "rejected"
                     and e["detail"].get("cmd") == "dance"], 10)
        assert bad_cmd[0]["detail"]["error"]["code"] == "unknown_command"
    seqs = [e["seq"] for e in planner.events]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_clean_shutdown_leaves_retained_offline(tmp_path: Path, broker: Broker) -> None:
    config = agent_config(tmp_path, broker, tmp_path / "no-such-tty")
    async with running_agent(config) as agent:
        await agent.wait_broker()
    async with Planner(broker.host, broker.port) as late:
        status = await late.wait_for(lambda: late.statuses, 10, "retained status")
        assert status[-1]["state"] == "offline"
        assert status[-1]["session"] >= 1
