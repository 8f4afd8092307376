"""The GRBL 1.1 emulator, driven over a real pseudo-terminal with pyserial, as a host would."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import serial

from agent.emulators.grbl import GrblEmulator, add_cli_arguments, run_cli
from agent.emulators.grbl_noise import ReplyNoise, is_safe_junk
from agent.emulators.pty import PtyEndpoint
from tests.support.eventually import eventually

pytestmark = pytest.mark.timeout(60)

BANNER = "Grbl 1.1h ['$' for help]"
STATUS = re.compile(
    r"^<(?P<state>Idle|Run|Hold:[01]|Jog|Alarm|Door:[0-3]|Check|Home|Sleep)"
    r"\|MPos:(?P<x>-?\d+\.\d{3}),(?P<y>-?\d+\.\d{3}),(?P<z>-?\d+\.\d{3})"
    r"\|Bf:(?P<blocks>\d+),(?P<bytes>\d+)"
    r"\|FS:(?P<feed>\d+),(?P<speed>\d+)"
    r"(?P<rest>(?:\|[A-Za-z]+:[^|>]*)*)>$"
)


def tshirt_front_outline(step_mm: float = 5.0, feed_mm_min: int = 6000) -> list[str]:
    """A T-shirt front half-outline (size M) cut as short knife segments, in mm."""
    corners = [
        (0.0, 0.0),
        (260.0, 0.0),
        (265.0, 420.0),
        (330.0, 470.0),
        (300.0, 540.0),
        (200.0, 600.0),
        (140.0, 560.0),
        (0.0, 560.0),
    ]
    lines = ["G21 G90", "G0 X0 Y0", "M3 S800"]
    for (x0, y0), (x1, y1) in itertools.pairwise(corners):
        length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
        steps = max(1, int(length // step_mm))
        for i in range(1, steps + 1):
            x = x0 + (x1 - x0) * i / steps
            y = y0 + (y1 - y0) * i / steps
            lines.append(f"G1 X{x:.3f} Y{y:.3f} F{feed_mm_min}")
    lines.append("M5")
    return lines


def normalised(line: str) -> str:
    return line.replace(" ", "").upper()


class Host:
    """A serial host on the pty: non-blocking reads so the event loop keeps running."""

    def __init__(self, path: str) -> None:
        self.port = serial.Serial(path, 115_200, timeout=0)
        self._buffer = bytearray()
        self.raw_lines: list[bytes] = []

    def close(self) -> None:
        self.port.close()

    def write(self, data: bytes) -> None:
        self.port.write(data)

    async def read_line(self, within_s: float = 10.0) -> str:
        deadline = time.monotonic() + within_s
        while b"\n" not in self._buffer:
            chunk = self.port.read(4096)
            if chunk:
                self._buffer += chunk
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"no line within {within_s} s; have {bytes(self._buffer)!r}")
            await asyncio.sleep(0.002)
        raw, _, rest = self._buffer.partition(b"\n")
        self._buffer = bytearray(rest)
        self.raw_lines.append(bytes(raw))
        return raw.rstrip(b"\r").decode("latin-1")

    async def read_until(
        self, predicate: Callable[[str], bool], within_s: float = 10.0
    ) -> list[str]:
        lines: list[str] = []
        deadline = time.monotonic() + within_s
        while True:
            line = await self.read_line(max(0.01, deadline - time.monotonic()))
            lines.append(line)
            if predicate(line):
                return lines

    async def command(self, line: str, within_s: float = 10.0) -> list[str]:
        """Send one line; return every line received up to and including its ok/error."""
        self.write(line.encode() + b"\n")
        return await self.read_until(is_answer, within_s)

    async def status(self) -> re.Match[str]:
        self.write(b"?")
        line = (await self.read_until(lambda s: s.startswith("<")))[-1]
        match = STATUS.match(line)
        assert match is not None, line
        return match

    async def wait_state(self, state: str, within_s: float = 15.0) -> re.Match[str]:
        deadline = time.monotonic() + within_s
        while True:
            match = await self.status()
            if match["state"] == state:
                return match
            assert time.monotonic() < deadline, f"never reached {state}, last {match.group(0)}"
            await asyncio.sleep(0.02)

    async def silent_for(self, seconds: float) -> bool:
        """True if nothing at all arrives for ``seconds``."""
        await asyncio.sleep(seconds)
        return not self.port.read(4096) and not self._buffer


def is_answer(line: str) -> bool:
    return line == "ok" or line.startswith("error:")


@contextlib.asynccontextmanager
async def grbl(**options: object) -> AsyncIterator[tuple[GrblEmulator, Host]]:
    async with PtyEndpoint(baud=115_200) as endpoint:
        emulator = GrblEmulator(endpoint, **options)  # type: ignore[arg-type]
        task = asyncio.create_task(emulator.run(), name="grbl-under-test")
        host = Host(endpoint.path)
        try:
            await host.read_until(lambda s: s == BANNER)
            yield emulator, host
        finally:
            host.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def counting_sender(host: Host, lines: list[str], rx_buffer: int = 128) -> list[str]:
    """GRBL's character-counting protocol: keep at most rx_buffer - 1 bytes in flight."""
    in_flight: list[int] = []
    answers: list[str] = []
    for line in lines:
        data = line.encode() + b"\n"
        while in_flight and sum(in_flight) + len(data) > rx_buffer - 1:
            answer = (await host.read_until(is_answer))[-1]
            answers.append(answer)
            in_flight.pop(0)
        host.write(data)
        in_flight.append(len(data))
    while in_flight:
        answers.append((await host.read_until(is_answer, within_s=30))[-1])
        in_flight.pop(0)
    return answers


# -- startup, answers, reports ------------------------------------------------------------------


async def test_banner_at_start_and_build_info() -> None:
    async with grbl() as (emulator, host):
        assert await host.command("$I") == ["[VER:1.1h.20190825:]", "[OPT:VM,15,128]", "ok"]
        assert emulator.system_commands == ["$I"]
        assert emulator.executed == []


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        ("G21 G90 (cutting table in mm)", "ok"),
        ("", "ok"),
        ("; a comment only", "ok"),
        ("G1 X260 Y0", "error:22"),  # feed rate never set
        ("X", "error:2"),  # letter without a number
        ("1X", "error:1"),  # number without a letter
        ("M100", "error:20"),
        ("G5", "error:20"),
        ("G1.5 X1 F100", "error:23"),
        ("G0 X10 X20", "error:25"),
        ("G0 G1 X10", "error:21"),
        ("G4", "error:28"),
        ("G0 X10 I5", "error:36"),
        ("G1 X10 F-100", "error:4"),
        ("T300", "error:38"),
        ("G2 X10 Y0 R4 F1000", "error:34"),
        ("G2 X10 Y0 I5 J0 F1000", "ok"),
        ("G1 " + "X1.000000 " * 9, "error:11"),  # more than 79 characters kept
        ("$ZZ", "error:2"),
        ("$999=1", "error:3"),
        ("$50=1", "error:3"),
        ("$GG", "error:3"),
        ("$0=2", "error:6"),
    ],
)
async def test_lines_get_grbl_answers(line: str, answer: str) -> None:
    async with grbl() as (emulator, host):
        assert (await host.command(line))[-1] == answer
        if answer.startswith("error:"):
            assert emulator.errors_sent == [int(answer.split(":")[1])]
            assert emulator.executed == []


async def test_parser_state_settings_and_crlf() -> None:
    async with grbl() as (emulator, host):
        assert await host.command("$G") == ["[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]", "ok"]
        assert (await host.command("G20 G91 G1 X1 F10 M3 S900"))[-1] == "ok"
        assert await host.command("$G") == [
            "[GC:G1 G54 G17 G20 G91 G94 M3 M9 T0 F10 S900]",
            "ok",
        ]
        assert emulator.position == pytest.approx((25.4, 0.0, 0.0))
        settings = await host.command("$$")
        assert "$110=8000.000" in settings
        assert settings[-1] == "ok"
        assert await host.command("$110=6000") == ["ok"]
        assert "$110=6000.000" in await host.command("$$")
        # CR and LF both end a line: a CRLF host gets an extra ok for the empty line.
        host.write(b"G90\r\n")
        assert await host.read_line() == "ok"
        assert await host.read_line() == "ok"
        assert emulator.executed == ["G20G91G1X1F10M3S900", "G90"]


async def test_unsupported_commands_model_a_build_without_mist() -> None:
    async with grbl(unsupported=frozenset({"M7", "g02"})) as (emulator, host):
        assert (await host.command("M7"))[-1] == "error:20"
        assert (await host.command("G2 X10 Y0 I5 J0 F1000"))[-1] == "error:20"
        assert (await host.command("M8"))[-1] == "ok"
        assert (await host.command("$I"))[1] == "[OPT:V,15,128]"
        assert emulator.executed == ["M8"]


async def test_status_report_format_wco_and_overrides() -> None:
    async with grbl() as (_emulator, host):
        reports = [await host.status() for _ in range(12)]
        first = reports[0]
        assert first["state"] == "Idle"
        assert (first["blocks"], first["bytes"]) == ("15", "128")
        assert "|WCO:0.000,0.000,0.000" in first["rest"]
        assert "Ov:" in reports[1]["rest"]  # overrides come in the second report
        assert sum("WCO:" in r["rest"] for r in reports) == 2  # first, then every 10th idle
        await host.command("G10 L2 P1 X15 Y25")
        assert "|WCO:15.000,25.000,0.000" in (await host.status())["rest"]
        host.write(b"\x91")  # feed override +10 %
        assert "|Ov:110,100,100" in (await host.status())["rest"]
        assert await host.command("G0 X100 Y50") == ["ok"]
        moved = await host.status()
        assert (moved["x"], moved["y"]) == ("115.000", "75.000")


async def test_check_mode_parses_without_executing() -> None:
    async with grbl() as (emulator, host):
        assert await host.command("$C") == ["[MSG:Enabled]", "ok"]
        assert (await host.status())["state"] == "Check"
        assert (await host.command("G1 X260 Y0"))[-1] == "error:22"
        assert (await host.command("G1 X260 Y0 F3000"))[-1] == "ok"
        assert emulator.executed == []
        assert emulator.checked == ["G1X260Y0F3000"]
        lines = await host.command("$C")
        assert lines == ["[MSG:Disabled]", "ok"]
        assert await host.read_line() == ""
        assert await host.read_line() == BANNER
        assert (await host.status())["state"] == "Idle"
        assert emulator.resets == 1
        assert emulator.position == (0.0, 0.0, 0.0)


async def test_homing_and_startup_lines() -> None:
    async with grbl() as (emulator, host):
        assert await host.command("$N0=G21 G54") == ["ok"]
        assert await host.command("$N") == ["$N0=G21G54", "$N1=", "ok"]
        await host.command("G0 X40 Y30")
        assert await host.command("$H") == [">G21G54:ok", "ok"]
        assert emulator.position == (0.0, 0.0, 0.0)
        assert (await host.status())["state"] == "Idle"


# -- hold, resume, reset ------------------------------------------------------------------------


async def test_feed_hold_without_motion_parses_nothing_until_resumed() -> None:
    async with grbl() as (emulator, host):
        host.write(b"!")
        assert (await host.status())["state"] == "Hold:0"
        host.write(b"G0 X50 Y20\n")
        assert await host.silent_for(0.3)
        assert emulator.executed == []
        host.write(b"~")
        assert await host.read_line() == "ok"
        assert emulator.executed == ["G0X50Y20"]
        assert (await host.status())["state"] == "Idle"
        assert emulator.log == [
            ("realtime", "feed_hold"),
            ("realtime", "status_report"),
            ("realtime", "cycle_start"),
            ("line", "G0 X50 Y20"),
            ("realtime", "status_report"),
        ]


async def test_feed_hold_with_motion_ignores_resume_while_decelerating() -> None:
    async with grbl(motion=True) as (emulator, host):
        assert await host.command("G1 X400 Y0 F3000") == ["ok"]  # about 8 s of cutting
        await host.wait_state("Run")
        host.write(b"!~")  # the resume arrives during Hold:1 and must be ignored
        assert (await host.status())["state"] == "Hold:1"
        held = await host.wait_state("Hold:0")
        await asyncio.sleep(0.2)
        still = await host.status()
        assert still["state"] == "Hold:0"
        assert still["x"] == held["x"]  # no motion while held
        assert float(held["x"]) < 400
        host.write(b"~")
        await host.wait_state("Run")
        assert ("realtime", "cycle_start") in emulator.log
        host.write(b"\x18")
        assert (await host.read_until(lambda s: s.startswith("ALARM:")))[-1] == "ALARM:3"


async def test_soft_reset_during_motion_alarms_and_locks_gcode() -> None:
    async with grbl(motion=True) as (emulator, host):
        assert await host.command("G1 X300 Y0 F3000") == ["ok"]
        await host.wait_state("Run")
        host.write(b"\x18G0 X0 Y0\n")  # e-stop, then a program line right behind it
        assert await host.read_line() == "ALARM:3"
        assert await host.read_line() == ""
        assert await host.read_line() == BANNER
        assert await host.read_line() == "[MSG:'$H'|'$X' to unlock]"
        assert await host.read_line() == "error:9"
        assert (await host.status())["state"] == "Alarm"
        assert emulator.alarms_sent == [3]
        assert emulator.resets == 1
        reset_at = emulator.log.index(("realtime", "soft_reset"))
        assert emulator.log.index(("line", "G0 X0 Y0")) > reset_at
        assert (await host.command("G0 X0 Y0"))[-1] == "error:9"
        assert await host.command("$X") == ["[MSG:Caution: Unlocked]", "ok"]
        assert await host.command("G0 X0 Y0") == ["ok"]
        assert emulator.executed == ["G1X300Y0F3000", "G0X0Y0"]
        assert emulator.errors_sent == [9, 9]


async def test_soft_reset_when_idle_or_held_gives_no_alarm() -> None:
    async with grbl(motion=True) as (emulator, host):
        host.write(b"\x18")
        assert await host.read_until(lambda s: s != "") == ["", BANNER]
        assert await host.command("G1 X200 F3000") == ["ok"]
        await host.wait_state("Run")
        host.write(b"!")
        await host.wait_state("Hold:0")
        host.write(b"\x18")
        assert await host.read_until(lambda s: s != "") == ["", BANNER]
        assert (await host.status())["state"] == "Idle"
        assert emulator.alarms_sent == []
        assert emulator.resets == 2
        # The parser was reset too: the feed rate is undefined again.
        assert (await host.command("G1 X10"))[-1] == "error:22"


# -- flow control -------------------------------------------------------------------------------


async def test_overrunning_sender_loses_bytes_and_garbles_lines() -> None:
    lines = tshirt_front_outline(step_mm=5.0, feed_mm_min=3000)  # 0.1 s per block
    data = "".join(line + "\n" for line in lines).encode()
    assert len(data) >= 2000
    async with grbl(motion=True) as (emulator, host):
        host.write(data)  # everything at once, ignoring the 128-byte buffer
        sent = set(lines)
        await eventually(lambda: any(kind == "line" and text not in sent
                                     for kind, text in emulator.log), what="a garbled line")
        assert emulator.overflow_bytes > 0
        # A garbled line can be a long, wrong move: stop the machine like an operator would.
        host.write(b"\x18")
        await host.read_until(lambda s: s == BANNER)
        assert emulator.executed != [normalised(line) for line in lines]


async def test_character_counting_sender_runs_every_line_in_order() -> None:
    lines = tshirt_front_outline(step_mm=10.0, feed_mm_min=60_000)
    async with grbl(motion=True) as (emulator, host):
        # A fast table, so the test is quick: settings go one at a time (EEPROM writes).
        assert await host.command("$110=60000") == ["ok"]
        assert await host.command("$111=60000") == ["ok"]
        answers = await counting_sender(host, lines)
        assert answers == ["ok"] * len(lines)
        assert emulator.executed == [normalised(line) for line in lines]
        assert emulator.overflow_bytes == 0
        assert emulator.errors_sent == []


async def test_dwell_is_answered_only_after_motion_finished() -> None:
    async with grbl(motion=True) as (emulator, host):
        host.write(b"G1 X150 Y0 F6000\nG4 P0\n")  # 1.5 s of cutting
        assert await host.read_line() == "ok"
        assert emulator.state == "Run"
        assert await host.read_line() == "ok"  # the G4 fence
        assert emulator.state == "Idle"
        assert emulator.position == (150.0, 0.0, 0.0)


async def test_dwell_without_motion_answers_at_once() -> None:
    async with grbl() as (emulator, host):
        assert await host.command("G4 P1000", within_s=5) == ["ok"]
        assert emulator.executed == ["G4P1000"]


async def test_settings_write_blocks_the_serial_port() -> None:
    async with grbl() as (emulator, host):
        host.write(b"$110=7000\nG0 X10\n")  # the second line arrives during the EEPROM write
        assert await host.read_line() == "ok"
        assert await host.silent_for(0.2)
        assert emulator.eeprom_lost_bytes > 0
        assert emulator.executed == []


# -- record file, noise, command line ------------------------------------------------------------


async def test_record_file_lists_executed_lines(tmp_path: Path) -> None:
    record = tmp_path / "executed.gcode"
    async with grbl(record_path=record) as (emulator, host):
        for line in ["G21 G90", "G0 X12 Y8", "G1 X52 Y8 F1500", "G1 X999 I1", "M5"]:
            await host.command(line)
        assert record.read_text() == "G21G90\nG0X12Y8\nG1X52Y8F1500\nM5\n"
        assert emulator.executed == ["G21G90", "G0X12Y8", "G1X52Y8F1500", "M5"]


async def test_noise_never_looks_like_a_reply() -> None:
    label = ["G21 G90", "M3 S300"] + [f"G1 X{10 + i % 40}.5 Y{5 + i % 7} F1200" for i in range(80)]
    async with grbl(noise=0.5, seed=11) as (emulator, host):
        answers = 0
        for line in label:
            host.write(line.encode() + b"\n")
            while True:
                text = (await host.read_line()).strip()
                if text == "ok":
                    answers += 1
                    break
                assert not text.startswith(("error", "ALARM", "<", "Grbl")), text
        assert answers == len(label)
        assert await host.silent_for(0.2)
        assert emulator.executed == [normalised(line) for line in label]
        junk = [raw for raw in host.raw_lines if raw.rstrip(b"\r") != b"ok"]
        assert junk, "noise 0.5 produced no junk"
        assert any(len(raw) >= 300 for raw in junk) or any(not raw.isascii() for raw in junk)


def test_junk_lines_are_never_replies() -> None:
    noise = ReplyNoise(1.0, seed=3)
    lines = [noise.junk_before_reply() for _ in range(3000)]
    assert all(line.endswith(b"\n") for line in lines)
    assert all(is_safe_junk(line) for line in lines)
    assert any(len(line) > 300 for line in lines)
    assert any(not line.isascii() for line in lines)
    assert not is_safe_junk(b"\xff ok\r\n")
    assert not is_safe_junk(b"junk\rALARM:1\n")


async def test_cli_runs_emulator_on_a_symlink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    link = tmp_path / "ttyGRBL"
    args = parser.parse_args(["--link", str(link), "--motion", "--unsupported", "m7, M8"])
    assert (args.baud, args.latency_ms, args.noise, args.seed) == (115_200, 0, 0.0, 0)
    task = asyncio.create_task(run_cli(args))
    try:
        for _ in range(500):
            if link.is_symlink():
                break
            await asyncio.sleep(0.01)
        host = Host(str(link))
        try:
            # The start-up banner may predate the open (pyserial flushes input on open): a
            # soft reset brings a fresh one, as a host's connect sequence does.
            host.write(b"\x18")
            await host.read_until(lambda s: s == BANNER)
            assert (await host.command("M8"))[-1] == "error:20"
        finally:
            host.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert capsys.readouterr().out.startswith(f"GRBL emulator on {link} -> /dev/pts/")


# -- less common commands -----------------------------------------------------------------------


async def test_comments_do_not_count_towards_the_line_limit_but_realtime_bytes_act() -> None:
    async with grbl() as (emulator, host):
        long_comment = "(" + "care label, 100% cotton, wash at 30 C " * 3 + ")"
        assert await host.command(f"G0 X5 Y5 {long_comment}") == ["ok"]
        # A '!' inside a comment is still a feed hold: GRBL never sees it as text.
        host.write(b"G0 X9 (cut here!)\n")
        assert await host.silent_for(0.2)
        assert emulator.state == "Hold:0"
        host.write(b"~")
        assert await host.read_line() == "ok"
        assert emulator.executed == ["G0X5Y5", "G0X9"]


async def test_work_offsets_probe_and_parameters() -> None:
    async with grbl() as (emulator, host):
        await host.command("G0 X100 Y40")
        assert await host.command("G92 X0 Y0") == ["ok"]
        assert "|WCO:100.000,40.000,0.000" in (await host.status())["rest"]
        assert await host.command("G92.1") == ["ok"]
        assert await host.command("G10 L20 P2 X10") == ["ok"]
        params = await host.command("$#")
        assert params[1] == "[G55:90.000,0.000,0.000]"
        assert params[-1] == "ok"
        assert await host.command("G38.2 Z-10 F100") == [
            "ALARM:5",
            "[PRB:100.000,40.000,-10.000:0]",
            "ok",
        ]
        assert (await host.command("G0 Z0"))[-1] == "error:9"
        assert emulator.alarms_sent == [5]


async def test_program_pause_waits_for_cycle_start() -> None:
    async with grbl(motion=True) as (emulator, host):
        assert await host.command("G1 X30 F3000") == ["ok"]
        host.write(b"M0\n")
        await host.wait_state("Hold:0")
        assert emulator.position == (30.0, 0.0, 0.0)
        assert not host.port.read(100)
        host.write(b"~")
        assert await host.read_line() == "ok"
        assert await host.command("M30") == ["[MSG:Pgm End]", "ok"]


async def test_jogging_and_jog_cancel() -> None:
    async with grbl(motion=True) as (emulator, host):
        assert await host.command("$J=G91 X300 F3000") == ["ok"]
        await host.wait_state("Jog")
        assert (await host.command("G0 X0"))[-1] == "error:9"
        host.write(b"\x85")
        idle = await host.wait_state("Idle")
        assert 0 < float(idle["x"]) < 300
        assert (await host.command("$J=X10"))[-1] == "error:22"  # every jog needs its F
        assert (await host.command("$J=M3 X10 F100"))[-1] == "error:16"
        assert emulator.system_commands[0] == "$J=G91X300F3000"


async def test_sleep_and_restore_defaults() -> None:
    async with grbl() as (emulator, host):
        assert await host.command("$110=5000") == ["ok"]
        assert await host.command("$RST=$") == ["[MSG:Restoring defaults]", "ok"]
        await host.read_until(lambda s: s == BANNER)
        assert "$110=8000.000" in await host.command("$$")
        assert await host.command("$SLP") == ["ok"]
        assert await host.read_line() == "[MSG:Sleeping]"
        host.write(b"G0 X1\n")
        assert await host.silent_for(0.2)
        host.write(b"\x18")
        assert await host.read_until(lambda s: s.startswith("[MSG:")) == [
            "",
            BANNER,
            "[MSG:'$H'|'$X' to unlock]",
        ]
        assert emulator.state == "Alarm"
        assert emulator.resets == 2


async def test_spindle_changes_wait_for_motion_but_laser_power_rides_along() -> None:
    async with grbl(motion=True) as (emulator, host):
        host.write(b"M3 S800\nG1 X60 F3000\nM5\n")
        assert await host.read_line() == "ok"
        assert await host.read_line() == "ok"
        assert await host.read_line() == "ok"  # M5 waited for the cut to finish
        assert emulator.state == "Idle"
        assert emulator.position == (60.0, 0.0, 0.0)
        assert await host.command("$32=1") == ["ok"]  # laser mode
        assert await host.command("M4 S0") == ["ok"]
        host.write(b"G1 X400 S800\nG1 X60 S300\n")
        assert await host.read_line() == "ok"
        assert await host.read_line() == "ok"  # queued behind the first cut, no waiting
        assert emulator.state == "Run"


async def test_line_limit_is_79_characters_after_normalisation() -> None:
    async with grbl() as (emulator, host):
        longest = "G0X1." + "0" * 74
        assert len(longest) == 79
        assert await host.command(longest.lower()) == ["ok"]
        assert await host.command(longest + "0") == ["error:11"]
        assert await host.command("G0 X1.0 " + " " * 100 + "Y2.0") == ["ok"]  # spaces are free
        assert emulator.executed == [longest, "G0X1.0Y2.0"]


async def test_g28_goes_home_through_an_intermediate_point() -> None:
    async with grbl() as (emulator, host):
        await host.command("G0 X400 Y300 Z5")
        assert await host.command("G28.1") == ["ok"]
        await host.command("G0 X10 Y10 Z0")
        assert await host.command("G28 Z5") == ["ok"]  # only Z goes home
        assert emulator.position == (10.0, 10.0, 5.0)
        assert await host.command("G28") == ["ok"]
        assert emulator.position == (400.0, 300.0, 5.0)
