"""The agent over TLS with a client certificate, against the shipped broker config and ACL."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from agent.emulators.grbl import GrblEmulator
from agent.emulators.pty import PtyEndpoint
from tests.production.tls_broker import make_tls_files, running_tls_broker
from tests.support.planner import Planner
from tests.support.station import agent_config, background, running_agent

pytestmark = pytest.mark.timeout(120)


def _context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def test_agent_runs_a_job_over_tls_with_its_station_certificate(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "pki", ["controller", "laser-02"])
    link = tmp_path / "ttyLASER"
    with running_tls_broker(tls, tmp_path / "broker") as broker:
        config = agent_config(
            tmp_path, broker, link, station="laser-02",
            mqtt={"tls": {"ca_file": str(tls.ca_file), "cert_file": str(tls.cert("laser-02")),
                          "key_file": str(tls.key("laser-02"))}},
        )
        controller_tls = _context(tls.ca_file, tls.cert("controller"), tls.key("controller"))
        async with PtyEndpoint(link, baud=115_200) as endpoint:
            emulator = GrblEmulator(endpoint)
            async with background(emulator.run, "grbl"), Planner(
                broker.host, broker.port, station="laser-02", tls=controller_tls,
                client_id="controller",
            ) as planner, running_agent(config) as agent:
                await agent.wait_broker()
                await agent.wait_device_online()
                await planner.submit({"job_id": "label-tls-1", "kind": "gcode",
                                      "program": "G21 G90\nG0 X10 Y10\nG1 X50 Y10 F1200\n"})
                end = await planner.wait_terminal("label-tls-1")
                assert end["event"] == "succeeded"
                assert agent.agent is not None
                # Everything the station published was allowed by the ACL.
                assert agent.agent.link.stats.rejected_by_broker == 0
    assert emulator.executed == ["G21G90", "G0X10Y10", "G1X50Y10F1200", "G4P0"]
    assert planner.statuses and planner.statuses[-1]["station"] == "laser-02"
