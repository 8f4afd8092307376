"""The Marlin emulator's own serial behaviour, spoken to directly over a pseudo-terminal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.dialects.marlin import frame_line
from agent.emulators.marlin import DEFAULT_CAPABILITIES, MarlinEmulator
from agent.emulators.pty import PtyEndpoint
from agent.transport.serial_port import SerialLink

pytestmark = pytest.mark.timeout(60)


class Wire:
    def __init__(self, link: SerialLink, emulator: MarlinEmulator) -> None:
        self.link = link
        self.emulator = emulator
        self._buffer = b""

    async def lines_until(self, last: str, within_s: float = 5.0) -> list[str]:
        """Reply lines up to and including one that starts with ``last``."""
        got: list[str] = []
        async with asyncio.timeout(within_s):
            while True:
                while b"\n" in self._buffer:
                    raw, _, self._buffer = self._buffer.partition(b"\n")
                    text = raw.decode().strip()
                    if not text or text in ("start",) or text.startswith("echo:Marlin"):
                        continue
                    got.append(text)
                    if text.startswith(last):
                        return got
                self._buffer += await self.link.read()


@contextlib.asynccontextmanager
async def wire(tmp_path: Path, **options: Any) -> AsyncIterator[Wire]:
    async with PtyEndpoint(tmp_path / "board", baud=None, latency_s=0.0) as endpoint:
        emulator = MarlinEmulator(endpoint, **options)
        emulator.start()
        link = await SerialLink.open(endpoint.path, 115200)
        try:
            yield Wire(link, emulator)
        finally:
            await link.close()
            await emulator.stop()


async def test_checksum_and_sequence_errors_ask_for_a_resend(tmp_path: Path) -> None:
    async with wire(tmp_path) as w:
        w.link.write(frame_line(0, "M110 N0"))
        assert await w.lines_until("ok") == ["ok"]
        w.link.write(b"N1 G28*99\n")  # wrong checksum
        assert await w.lines_until("ok") == [
            "Error:checksum mismatch, Last Line: 0", "Resend: 1", "ok"]
        w.link.write(frame_line(2, "G28"))  # skips N1
        assert await w.lines_until("ok") == [
            "Error:Line Number is not Last Line Number+1, Last Line: 0", "Resend: 1", "ok"]
        w.link.write(b"N1 G28\n")
        assert (await w.lines_until("ok"))[0].startswith("Error:No Checksum with line number")
        w.link.write(frame_line(1, "G28"))
        assert await w.lines_until("ok") == ["ok"]
        assert w.emulator.executed == ["M110 N0", "G28"]


async def test_advanced_ok_reports_line_planner_and_queue(tmp_path: Path) -> None:
    async with wire(tmp_path, advanced_ok=True, bufsize=4) as w:
        w.link.write(frame_line(0, "M110 N0"))
        assert await w.lines_until("ok") == ["ok N0 P15 B3"]
        w.link.write(frame_line(1, "G1 X10 Y10 F3000"))
        assert await w.lines_until("ok") == ["ok N1 P15 B3"]


async def test_the_receive_buffer_really_overflows(tmp_path: Path) -> None:
    async with wire(tmp_path, bufsize=1) as w:
        w.link.write(b"G4 P300\n")  # occupies the only queue slot
        await asyncio.sleep(0.05)
        w.link.write(b"G1 X100.125 Y200.250 F3000\n" * 10)  # 270 bytes into 127
        await w.lines_until("ok")
        assert w.emulator.rx_overflows > 0
        assert w.emulator.max_rx_bytes <= 127


async def test_m112_kills_the_board_at_once(tmp_path: Path) -> None:
    async with wire(tmp_path, bufsize=1) as w:
        w.link.write(b"G4 P2000\n")
        await asyncio.sleep(0.05)
        w.link.write(b"G1 X1 Y1\nM112\n")  # the queue is full: only the emergency parser sees it
        assert await w.lines_until("Error") == ["Error:Printer halted. kill() called!"]
        assert w.emulator.killed
        w.link.write(b"M105\n")
        with pytest.raises(TimeoutError):
            await w.lines_until("ok", within_s=0.5)
        assert w.emulator.log[-2:] == ["M112", "M105"]
        assert "G1 X1 Y1" not in w.emulator.executed


async def test_m115_lists_the_configured_capabilities(tmp_path: Path) -> None:
    caps = dict(DEFAULT_CAPABILITIES, AUTOREPORT_TEMP=False)
    async with wire(tmp_path, capabilities=caps) as w:
        w.link.write(b"M115\n")
        lines = await w.lines_until("ok")
        assert lines[0].startswith("FIRMWARE_NAME:Marlin")
        assert "Cap:AUTOREPORT_TEMP:0" in lines
        assert "Cap:EMERGENCY_PARSER:1" in lines


async def test_m155_reports_temperatures_and_m105_answers_them(tmp_path: Path) -> None:
    async with wire(tmp_path) as w:
        w.link.write(b"M155 S1\n")
        await w.lines_until("ok")
        report = await w.lines_until("T:", within_s=3.0)
        assert report[-1].startswith("T:22.00 /0.00 B:22.00 /0.00")
        w.link.write(b"M105\n")
        assert (await w.lines_until("ok"))[-1].startswith("ok T:")


async def test_no_transfer_into_the_queue_while_a_command_is_processed(tmp_path: Path) -> None:
    # Marlin's idle() runs get_serial_commands() between commands, not during one: a burst that
    # arrives while a command is processed stays in the receive buffer, free slots or not.
    async with wire(tmp_path, bufsize=16, command_time_s=0.3) as w:
        w.link.write(b"G90\n")
        await asyncio.sleep(0.05)
        assert w.emulator.processing
        w.link.write(b"G1 X100.125 Y200.250 F3000\n" * 6)  # 162 bytes into 127, 15 slots free
        await w.lines_until("ok")
        assert w.emulator.rx_overflows > 0
        assert w.emulator.max_rx_bytes <= 127


async def test_lines_move_into_the_queue_between_commands(tmp_path: Path) -> None:
    async with wire(tmp_path, bufsize=16, command_time_s=0.0) as w:
        w.link.write(b"G1 X100.125 Y200.250 F3000\n" * 6)  # idle board: straight into the queue
        for _ in range(6):
            await w.lines_until("ok")
        assert w.emulator.rx_overflows == 0
        assert w.emulator.executed.count("G1 X100.125 Y200.250 F3000") == 6
