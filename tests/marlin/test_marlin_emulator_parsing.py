"""The Marlin emulator reads lines as Marlin 2.1 does, so the guard's attack table means something.

Each attack form is fed straight to the emulator (over its pseudo-terminal, no agent in between)
and the firmware's effect is asserted: ``M0118 ok`` prints ``ok``, a lower-case ``g28`` homes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.dialects.marlin import frame_line
from agent.emulators.marlin import (
    DEFAULT_CAPABILITIES,
    MarlinEmulator,
    m118_output,
    parse_command,
    stream_line,
)
from agent.emulators.pty import PtyEndpoint
from agent.transport.serial_port import SerialLink

pytestmark = pytest.mark.timeout(60)

# The emulator's own M105 answer; the forged one below has one decimal, so it is not taken for it.
REAL_M105 = re.compile(r"ok T:\d+\.\d\d /\d+\.\d\d B:")


# -- the parser on its own (parser.cpp, queue.cpp, M118.cpp) ------------------------------------


@pytest.mark.parametrize(
    ("line", "word", "string_arg"),
    [
        ("M118 ok T:20.0", "M118", "ok T:20.0"),
        ("M0118 ok", "M118", "ok"),
        ("M000118 ok", "M118", "ok"),
        ("  m118 ok", "M118", "ok"),
        ("M 118 ok", "M118", "ok"),
        ("M118ok", "M118", "ok"),
        ("N5 M118 ok*12", "M118", "ok"),
        ("n5 m118 ok", "M118", "ok"),
        ("N5M118 ok", "M118", "ok"),
        ("M65654 ok", "M118", "ok"),  # 16-bit command number
        ("M117   hello there  ", "M117", "hello there  "),  # trailing spaces go only before *
        ("M32 P !cut.gco#rest", "M32", "cut.gco"),
        ("M0112", "M112", None),
        ("g028", "G28", None),
    ],
)
def test_parse_command_finds_the_command_marlin_runs(
    line: str, word: str, string_arg: str | None
) -> None:
    parsed = parse_command(line)
    assert parsed.word == word
    assert parsed.string_arg == string_arg


def test_parameters_as_marlin_reads_them() -> None:
    parsed = parse_command("g1 x10 Y 20 z-1.5 f600")
    assert parsed.word == "G1"
    assert parsed.value_float("X") == 10.0
    assert parsed.value_float("Y") == 20.0  # a space between letter and value is skipped
    assert parsed.value_float("Z") == -1.5
    assert parsed.value_float("F") == 600.0
    # value_float stops at E: X1e5 is X1 and E5, not X100000.
    e = parse_command("G1 X1e5")
    assert e.value_float("X") == 1.0
    assert e.value_float("E") == 5.0
    # A later copy of a letter wins (FASTER_GCODE_PARSER).
    assert parse_command("G1 X10 X20").value_float("X") == 20.0
    # A bare letter is seen without a value.
    homing = parse_command("G28 X Y")
    assert homing.params == {"X": None, "Y": None}
    # strtoul: a negative dwell is a huge one.
    assert parse_command("G4 P-1").value_ulong("P") == 2**32 - 1
    # Without a G, M or T there is no command.
    assert parse_command("X10 Y10").word == ""
    assert parse_command("M").word == ""


def test_stream_line_comments_escapes_and_backspace() -> None:
    assert stream_line("M118 ok ; T:20.0") == "M118 ok "
    assert stream_line("M118 a\\;b") == "M118 a;b"
    assert stream_line("M118 ok\b\bhi") == "M118 hi"
    # PAREN_COMMENTS is off by default: parentheses are ordinary text.
    assert stream_line("G1 X1 (note) Y2") == "G1 X1 (note) Y2"
    assert stream_line("G1 X1 (note) Y2", paren_comments=True) == "G1 X1  Y2"
    assert len(stream_line("M118 " + "x" * 200)) == 95


def test_m118_options_are_upper_case_words_at_the_start() -> None:
    assert m118_output("ok T:20.0") == "ok T:20.0"
    assert m118_output("E1 ok") == "echo:ok"
    assert m118_output("A1 action:cancel") == "//action:cancel"
    assert m118_output("P0 E1  start") == "echo:start"
    assert m118_output("e1 ok") == "e1 ok"  # lower case is text


# -- the emulator's effect, over the wire ---------------------------------------------------------


class Board:
    def __init__(self, link: SerialLink, emulator: MarlinEmulator) -> None:
        self.link = link
        self.emulator = emulator
        self._buffer = b""

    async def _line(self) -> str:
        while b"\n" not in self._buffer:
            self._buffer += await self.link.read()
        raw, _, self._buffer = self._buffer.partition(b"\n")
        return raw.decode("ascii", "replace").rstrip("\r")

    async def replies(self, data: bytes, within_s: float = 5.0) -> list[str]:
        """Every line the board prints for ``data``, up to (not including) the answer to an
        M105 sent after it (told from the forged reports in FORGERIES by its two decimals)."""
        self.link.write(data + b"\nM105\n")
        got: list[str] = []
        async with asyncio.timeout(within_s):
            while True:
                text = await self._line()
                if REAL_M105.match(text):
                    return got
                got.append(text)


@contextlib.asynccontextmanager
async def board(tmp_path: Path, **options: Any) -> AsyncIterator[Board]:
    async with PtyEndpoint(tmp_path / "board", baud=None, latency_s=0.0) as endpoint:
        emulator = MarlinEmulator(endpoint, **options)
        emulator.start()
        link = await SerialLink.open(endpoint.path, 115200)
        try:
            b = Board(link, emulator)
            await b.replies(b"")  # past the boot lines
            yield b
        finally:
            await link.close()
            await emulator.stop()


# (what is sent, what the firmware prints before its own ok)
FORGERIES: list[tuple[bytes, str]] = [
    (b"M118 ok T:20.0 /0.0 B:20.0 /0.0 @:0 B@:0", "ok T:20.0 /0.0 B:20.0 /0.0 @:0 B@:0"),
    (b"M118 start", "start"),
    (b"M118 E1 ok", "echo:ok"),
    (b"M118 A1 action:cancel", "//action:cancel"),
    (b" m118 ok", "ok"),
    (b"M0118 ok", "ok"),
    (b"M 118 ok", "ok"),
    (b"M118ok", "ok"),
    (b"m118 ok ; a comment", "ok"),
    (b"M118 ok (not a comment here)", "ok (not a comment here)"),
    (b"n5 m118 ok", "ok"),
    (b"M65654 Resend: 1", "Resend: 1"),
    (b"M118 a\\;b", "a;b"),
    (b"M118 Error:Printer halted. kill() called!", "Error:Printer halted. kill() called!"),
]


async def test_attack_forms_print_what_marlin_prints(tmp_path: Path) -> None:
    async with board(tmp_path) as b:
        for data, printed in FORGERIES:
            assert await b.replies(data) == [printed, "ok"], data
        # With a line number and the right checksum (what the driver would frame).
        assert await b.replies(frame_line(0, "M110 N0").rstrip(b"\n")) == ["ok"]
        assert await b.replies(frame_line(1, "M118 ok").rstrip(b"\n")) == ["ok", "ok"]
        ran = [line for line in b.emulator.executed if line != "M105"]
        assert ran[-2:] == ["M110 N0", "M118 ok"]  # line number and checksum are not the command
        assert ran.count("m118 ok") == 3  # " m118 ok", the commented one, "n5 m118 ok"


async def test_lower_case_and_leading_zeros_run_the_command(tmp_path: Path) -> None:
    async with board(tmp_path, homing_time_s=0.01) as b:
        for data in (b"g28", b"G028", b"G 28 X Y"):
            assert await b.replies(data) == ["ok"], data
        assert [c for c in b.emulator.executed if c != "M105"][-3:] == ["g28", "G028", "G 28 X Y"]
        # An unknown word is answered, not run.
        assert await b.replies(b"M5000 P1") == ['echo:Unknown command: "M5000 P1"', "ok"]
        assert "M5000 P1" not in b.emulator.executed


async def test_m0112_kills_when_it_runs(tmp_path: Path) -> None:
    # The emergency parser does not recognise M0112, the ordinary parser runs it as M112.
    async with board(tmp_path) as b:
        b.link.write(b"M0112\n")
        assert await b._line() == "Error:Printer halted. kill() called!"
        assert b.emulator.killed


async def test_m117_is_sent_to_the_host_only_with_host_notifications(tmp_path: Path) -> None:
    async with board(tmp_path) as quiet:
        assert await quiet.replies(b"M117 ok") == ["ok"]
        assert quiet.emulator.status_message == "ok"
    caps = dict(DEFAULT_CAPABILITIES, HOST_ACTION_COMMANDS=True)
    (tmp_path / "loud").mkdir()
    async with board(tmp_path / "loud", capabilities=caps) as loud:
        assert await loud.replies(b"M117 Cutting front") == [
            "//action:notification Cutting front", "ok"]
