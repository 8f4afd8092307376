"""The serial trace end to end: real Mosquitto, the GRBL emulator on a real pty, the agent."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agent.aio import wait_within
from agent.emulators.grbl import GrblEmulator
from agent.emulators.pty import PtyEndpoint
from agent.schemas.trace import SerialTraceDump
from agent.trace_server import read_trace
from agent.transport.trace import EVENT_MAX_BYTES, EVENT_MAX_LINES
from tests.support.broker import Broker
from tests.support.planner import Planner
from tests.support.station import agent_config, background, running_agent

PROGRAM = "G21 G90\nG0 X20 Y20\nG1 Z-1 F600\nG1 X540 Y20 F3000\nM7\nG1 X540 Y500\nG0 Z5\n"


def _index(lines: list[str], suffix: str) -> int:
    found = [i for i, line in enumerate(lines) if line.endswith(suffix)]
    assert found, f"no line ending in {suffix!r} in {lines}"
    return found[-1]


async def test_failed_event_carries_the_last_lines_exchanged(
        tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    link = tmp_path / "ttyGRBL"
    async with PtyEndpoint(link, baud=115_200) as endpoint:
        # Built without mist coolant: M7 answers error:20 (GRBL's STATUS_GCODE_UNSUPPORTED_COMMAND).
        emulator = GrblEmulator(endpoint, unsupported=frozenset({"M7"}))
        async with background(emulator.run, "grbl"), Planner(broker.host, broker.port) as planner:
            async with running_agent(agent_config(tmp_path, broker, link)) as agent:
                await agent.wait_device_online()
                await agent.wait_broker()
                await planner.submit({"job_id": "front-2", "kind": "gcode", "program": PROGRAM})
                end = await planner.wait_terminal("front-2")
    assert end["event"] == "failed"
    trace = end["detail"]["trace"]
    SerialTraceDump.model_validate(trace)
    assert trace["port"] == str(link)
    lines = trace["lines"]
    assert 0 < len(lines) <= EVENT_MAX_LINES
    assert sum(len(line.encode()) + 1 for line in lines) <= EVENT_MAX_BYTES
    # The offending line went out before the firmware's answer came back.
    assert _index(lines, ">> M7") < _index(lines, "<< error:20")
    # Nothing in between is lost: the clip starts at the port's opening or counts what it left.
    assert trace["omitted"] > 0 or lines[0].endswith(f"-- opened {link} at 115200 baud")
    dumps = [r.getMessage() for r in caplog.records if "serial trace of" in r.getMessage()]
    assert any("job front-2 failed" in d and "<< error:20" in d for d in dumps), dumps


async def test_trace_command_and_socket_answer_for_a_running_station(
        tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    link = tmp_path / "ttyGRBL"
    config = agent_config(tmp_path, broker, link)
    async with PtyEndpoint(link, baud=115_200) as endpoint:
        emulator = GrblEmulator(endpoint)
        async with background(emulator.run, "grbl"), Planner(broker.host, broker.port) as planner:
            async with running_agent(config) as agent:
                await agent.wait_device_online()
                await agent.wait_broker()
                await planner.command("trace", request_id="t-1")
                done = await planner.wait_for(
                    lambda: [e for e in planner.events if e["event"] == "command_done"
                             and e["detail"].get("request_id") == "t-1"], 30, "trace answer")
                from_socket = await asyncio.to_thread(read_trace, config.storage.dir)
                # The machine goes away: the log gets the trace with why.
                await planner.wait_status("idle")  # not the device_offline from before
                endpoint.disconnect()
                await planner.wait_status("device_offline")
    detail = done[0]["detail"]
    assert detail["cmd"] == "trace"
    assert done[0]["job_id"] is None
    answered = SerialTraceDump.model_validate(detail["trace"])
    # The handshake is in it: the port opened, then GRBL's own banner or status report.
    assert answered.lines[0].endswith(f"-- opened {link} at 115200 baud")
    assert any("<< Grbl 1.1" in line or "<< <Idle" in line for line in answered.lines)
    assert SerialTraceDump.model_validate(from_socket).lines[0] == answered.lines[0]
    dumps = [r.getMessage() for r in caplog.records if "serial trace of" in r.getMessage()]
    assert any("device lost" in d for d in dumps), dumps


async def _grbl_until(device: PtyEndpoint, silent: asyncio.Event) -> None:
    """A GRBL board that answers its handshake and status polls, until it falls silent."""
    while True:
        data = await device.receive()
        if silent.is_set():
            continue
        if b"\x18" in data:
            device.send(b"\r\nGrbl 1.1h ['$' for help]\r\n")
        if b"?" in data:
            device.send(b"<Idle|MPos:0.000,0.000,0.000|FS:0,0>\r\n")
        if b"$I\n" in data:
            device.send(b"[VER:1.1h.20190825:]\r\n[OPT:V,15,128]\r\nok\r\n")


class _Counting(logging.Handler):
    """Sets ``reached`` once ``text`` has been logged ``times`` times (on the event loop)."""

    def __init__(self, text: str, times: int) -> None:
        super().__init__()
        self.text, self.times, self.seen = text, times, 0
        self.reached = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen += 1
            if self.seen >= self.times:
                self.reached.set()


def _quick_profile(tmp_path: Path, setting: str) -> Path:
    """grbl-1.1 as shipped, with one more top-level or [grbl] setting (short timeouts)."""
    shipped = Path(__file__).parents[2] / "firmware_profiles" / "grbl-1.1.toml"
    text = shipped.read_text().replace('name = "grbl-1.1"', 'name = "grbl-quick"')
    if setting.startswith("hello_"):
        text = text.replace("[bed]\n", f"{setting}\n\n[bed]\n")
    else:
        text = text.replace("[grbl]\n", f"[grbl]\n{setting}\n")
    profile = tmp_path / "grbl-quick.toml"
    profile.write_text(text)
    return profile


async def test_a_silent_machine_times_out_and_the_log_gets_the_trace(
        tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    profile = _quick_profile(tmp_path, "response_timeout_s = 0.6")
    link = tmp_path / "ttyGRBL"
    silent = asyncio.Event()
    async with PtyEndpoint(link, baud=None) as device:
        async with background(lambda: _grbl_until(device, silent), "grbl"), \
                Planner(broker.host, broker.port) as planner:
            config = agent_config(tmp_path, broker, link, profile=str(profile))
            async with running_agent(config) as agent:
                await agent.wait_device_online()
                await planner.wait_status("idle")  # not the device_offline from before
                silent.set()
                await planner.wait_status("device_offline")
    dumps = [r.getMessage() for r in caplog.records if "serial trace of" in r.getMessage()]
    timeouts = [d for d in dumps if "(timeout: GRBL silent" in d]
    assert timeouts, dumps
    # The polls that went unanswered are the last lines.
    assert timeouts[0].splitlines()[-1].endswith(">! ?")


async def test_a_machine_that_never_answers_is_dumped_once_not_at_every_reopen(
        tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    profile = _quick_profile(tmp_path, "hello_timeout_s = 0.3")
    link = tmp_path / "ttyGRBL"

    attempts = _Counting("machine link ended", 3)
    logging.getLogger("agent.device").addHandler(attempts)
    try:
        async with PtyEndpoint(link, baud=None):  # switched on, wrong cable: nothing answers
            config = agent_config(tmp_path, broker, link, profile=str(profile))
            async with running_agent(config):
                await wait_within(attempts.reached.wait(), 30)
    finally:
        logging.getLogger("agent.device").removeHandler(attempts)
    dumps = [r.getMessage() for r in caplog.records if "serial trace of" in r.getMessage()]
    assert len(dumps) == 1, dumps
    assert "opened" in dumps[0]
