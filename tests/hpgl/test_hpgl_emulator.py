"""The HP-GL emulator on its own, spoken to over a real pty with pyserial."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.emulators.hpgl import HpglEmulator, add_cli_arguments, run_cli
from agent.emulators.pty import PtyEndpoint
from agent.transport.serial_port import SerialLink

pytestmark = pytest.mark.timeout(60)

ESC = b"\x1b"


class Host:
    """The host side: a SerialLink and a CR-ended answer reader."""

    def __init__(self, link: SerialLink) -> None:
        self.link = link
        self.pending = bytearray()

    async def answer(self, limit_s: float = 5.0) -> str:
        async with asyncio.timeout(limit_s):
            while b"\r" not in self.pending:
                self.pending += await self.link.read()
        text, _, rest = bytes(self.pending).partition(b"\r")
        self.pending = bytearray(rest)
        return text.decode("ascii")

    async def ask(self, data: bytes) -> str:
        self.link.write(data)
        return await self.answer()


@contextlib.asynccontextmanager
async def emulated(
    *, baud: int | None = None, buffer_bytes: int = 1024, pen_speed_mm_s: float = 2000.0,
    constant_os: bool = False,
) -> AsyncIterator[tuple[HpglEmulator, Host]]:
    async with PtyEndpoint(baud=baud, latency_s=0.001) as endpoint:
        emulator = HpglEmulator(endpoint, buffer_bytes=buffer_bytes,
                                pen_speed_mm_s=pen_speed_mm_s, constant_os=constant_os)
        async with emulator:
            link = await SerialLink.open(endpoint.path, baud or 115_200)
            try:
                yield emulator, Host(link)
            finally:
                await link.close()


async def test_answers_device_control_and_output_instructions() -> None:
    async with emulated() as (_, host):
        assert await host.ask(ESC + b".L") == "1024"
        assert await host.ask(ESC + b".B") == "1024"
        assert await host.ask(ESC + b".O") == "8"
        assert await host.ask(ESC + b".E") == "0"
        assert await host.ask(b"OI;") == "7475A"
        assert await host.ask(b"OS;") == "24"  # ready + initialised after power-up
        assert await host.ask(b"OS;") == "16"  # reading cleared "initialised"
        assert await host.ask(b"OH;") == "0,0,16158,11040"
        assert await host.ask(b"PU400,800;PD;OA;") == "400,800,1"


async def test_overrunning_the_buffer_loses_bytes_and_reports_error_16_once() -> None:
    async with emulated(buffer_bytes=256, pen_speed_mm_s=20.0) as (emulator, host):
        job = b"".join(b"PU%d,%d;PD%d,%d;" % (40 * i, 40, 40 * i + 40, 80) for i in range(100))
        host.link.write(job)
        assert int(await host.ask(ESC + b".B")) < 64  # full, bar what the pen took
        assert emulator.overflow_errors == 1  # one overrun, however many bytes it lost
        assert 0 < emulator.bytes_dropped <= len(job) - 256
        assert await host.ask(ESC + b".E") == "16"
        assert await host.ask(ESC + b".E") == "0"  # reading cleared it
        host.link.write(ESC + b".K")  # abort: the buffer is discarded
        assert await host.ask(ESC + b".B") == "256"


async def test_a_query_while_the_last_answer_is_still_going_out_is_error_10() -> None:
    async with emulated(baud=9600) as (emulator, host):
        # The second ESC.B arrives while "1024\r" (5 bytes, about 5 ms at 9600) is being sent.
        host.link.write(ESC + b".B" + ESC + b".B")
        assert await host.answer() == "1024"
        assert await host.ask(ESC + b".E") == "10"
        assert emulator.overflow_errors == 0


def handshake(emulator: HpglEmulator) -> tuple[int, int | None, int | None]:
    return (emulator.xoff_threshold, emulator.xon_char, emulator.xoff_char)


async def test_parameterised_escapes_need_their_colon() -> None:
    async with emulated() as (emulator, host):
        host.link.write(ESC + b".I256;;17" + ESC + b".N;19:")  # no ':' after ESC.I
        assert await host.ask(ESC + b".E") == "12"
        assert handshake(emulator) == (0, None, None)
        host.link.write(ESC + b".I256;;17:" + ESC + b".N;19:" + ESC + b".@;1:")
        assert await host.ask(ESC + b".E") == "0"
        assert handshake(emulator) == (256, 17, 19)
        assert emulator.hardwire_handshake


async def test_xoff_below_the_threshold_and_xon_once_drained() -> None:
    async with emulated(buffer_bytes=512, pen_speed_mm_s=500.0) as (emulator, host):
        host.link.write(ESC + b".I128;;17:" + ESC + b".N;19:")
        job = b"".join(b"PU%d,%d;PD%d,%d;" % (40 * i, 40, 40 * i + 40, 80) for i in range(25))
        assert 512 - 128 < len(job) < 512  # into the XOFF zone, not over the edge
        host.link.write(job)
        async with asyncio.timeout(10):
            seen = bytearray()
            while b"\x11" not in seen:
                seen += await host.link.read()
        assert seen.index(b"\x13") < seen.index(b"\x11")
        assert emulator.xoff_count == 1
        assert emulator.overflow_errors == 0


async def test_strokes_are_recorded_in_plotter_units_in_order() -> None:
    async with emulated() as (emulator, host):
        host.link.write(b"IN;SP2;PU400,400;PD800,400,800,800;PU;PR40,0;PD;PA;PD0,0;SP0;")
        assert await host.ask(b"OA;") == "0,0,0"
        assert [(s.pen, s.points) for s in emulator.strokes] == [
            (2, ((400, 400), (800, 400), (800, 800))),
            (2, ((840, 800), (0, 0))),
        ]


async def test_command_line_runs_the_emulator_on_a_named_link(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    link_path = tmp_path / "ttyPLOTTER"
    record = tmp_path / "plot.jsonl"
    args = parser.parse_args(["--link", str(link_path), "--baud", "0", "--buffer", "2048",
                              "--pen-speed", "1000", "--record", str(record)])
    task = asyncio.create_task(run_cli(args))
    try:
        async with asyncio.timeout(5):
            while True:
                if link_path.exists():
                    break
                await asyncio.sleep(0.01)
        link = await SerialLink.open(str(link_path), 9600)
        host = Host(link)
        assert await host.ask(ESC + b".L") == "2048"
        assert await host.ask(b"SP1;PU0,0;PD400,0;PU;OS;") == "24"
        await link.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    rows = [json.loads(r) for r in record.read_text().splitlines()]
    assert rows == [{"pen": 1, "points": [[0, 0], [400, 0]]}]


async def test_os_bit_3_clears_on_read_like_a_7475a() -> None:
    """Manual: 24 at power-up; outputting the status byte clears bit 3; IN; sets it again."""
    async with emulated() as (_, host):
        assert await host.ask(b"OS;") == "24"
        assert await host.ask(b"OS;") == "16"
        assert await host.ask(b"IN;OS;") == "24"
        assert await host.ask(b"OS;") == "16"


async def test_a_constant_os_clone_always_answers_bit_3() -> None:
    async with emulated(constant_os=True) as (_, host):
        for _ in range(3):
            assert await host.ask(b"OS;") == "24"
