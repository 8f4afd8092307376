"""The GRBL emulator reads every attack form as the firmware does, and does what GRBL would.

Each line that got past the old regex guard is written straight to the emulated controller
over its pty and the firmware's effect is checked (a setting written, a startup line stored and
run, a coordinate system changed, homing, check mode, unlock, jog, hold). The guard tests in
tests/unit/test_grbl_allowlist.py refuse these same lines: this file shows what they would
have done.
"""

from __future__ import annotations

import pytest

from tests.emulators.test_grbl_emulator import BANNER, grbl

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("line", "setting", "value"),
    [
        ("$/100=1", 100, 1.0),  # '/' is dropped (protocol.c: block delete ignored)
        ("$ 1 0 0 = 2 5", 100, 25.0),  # spaces are dropped
        ("$+10=0", 10, 0.0),  # read_float takes the sign
        ("$10.0=1", 10, 1.0),  # and the decimal point
        ("$.5=10", 0, 10.0),  # setting uint8(0.5) = 0: the step pulse
        ("$0110=5000", 110, 5000.0),  # leading zero
        ("$/1/1/1=9000", 111, 9000.0),
    ],
)
async def test_settings_writes_in_every_spelling(line: str, setting: int, value: float) -> None:
    async with grbl() as (emulator, host):
        assert await host.command(line) == ["ok"]
        assert emulator.settings[setting] == value
        assert emulator.received.endswith(line.encode() + b"\n")


async def test_startup_line_is_run_when_stored_and_after_every_reset() -> None:
    async with grbl() as (emulator, host):
        assert await host.command("$/N0=G0X500Y500") == ["ok"]
        assert emulator.startup_lines[0] == "G0X500Y500"
        # system.c runs the block through gc_execute_line before storing it: it moves now.
        assert emulator.position == (500.0, 500.0, 0.0)
        assert await host.command("G0 X0 Y0") == ["ok"]
        host.write(b"\x18")
        assert await host.read_line() == ""
        assert await host.read_line() == BANNER
        assert await host.read_line() == ">G0X500Y500:ok"
        assert emulator.position == (500.0, 500.0, 0.0)
        # $N+1.0= is startup line 1 (read_float, then uint8).
        assert await host.command("$n+1.0=g0 x7") == ["ok"]
        assert emulator.startup_lines[1] == "G0X7"


async def test_homing_check_mode_and_unlock_through_slashes() -> None:
    async with grbl() as (emulator, host):
        assert await host.command("G0 X40 Y30") == ["ok"]
        assert await host.command("$/H") == ["ok"]
        assert emulator.position == (0.0, 0.0, 0.0)
        assert await host.command("$/C") == ["[MSG:Enabled]", "ok"]
        assert (await host.status())["state"] == "Check"
        assert await host.command("G0 X10") == ["ok"]
        assert emulator.checked == ["G0X10"]
        assert await host.command("/$C") == ["[MSG:Disabled]", "ok"]
        assert await host.read_line() == ""
        assert await host.read_line() == BANNER
        # Sleep then reset leaves the controller in alarm; $/X unlocks it.
        assert await host.command("$SLP") == ["ok"]
        assert await host.read_line() == "[MSG:Sleeping]"
        host.write(b"\x18")
        await host.read_until(lambda s: s == BANNER)
        assert (await host.status())["state"] == "Alarm"
        assert (await host.command("G0 X1"))[-1] == "error:9"
        assert await host.command("$/X") == ["[MSG:Caution: Unlocked]", "ok"]
        assert (await host.status())["state"] == "Idle"
        assert emulator.system_commands == ["$H", "$C", "$C", "$SLP", "$X"]


@pytest.mark.parametrize(
    ("line", "report"),
    [
        ("G10 L02 P1 X100 Y50", "[G54:100.000,50.000,0.000]"),  # L02 is L2
        ("L2 G10 P2 X7", "[G55:7.000,0.000,0.000]"),  # words in any order
        ("G10.0L2P3X9", "[G56:9.000,0.000,0.000]"),  # G10.0 is G10
        ("G010 L2.0 P4 Y3", "[G57:0.000,3.000,0.000]"),
        ("G10 L2.5 P5 Z-2", "[G58:0.000,0.000,-2.000]"),  # L keeps int_value: L2.5 is L2
        ("g10l2p6x1", "[G59:1.000,0.000,0.000]"),
        ("G10.001 L2 P1 X4", "[G54:4.000,0.000,0.000]"),  # mantissa round(0.1) = 0
        ("G16394 L2 P1 X3", "[G54:3.000,0.000,0.000]"),  # 8/16-bit wrap on AVR: G10
    ],
)
async def test_coordinate_system_writes(line: str, report: str) -> None:
    async with grbl() as (_emulator, host):
        assert await host.command(line) == ["ok"]
        assert report in await host.command("$#")


@pytest.mark.parametrize("line", ["G028.1", "G28.10", "G0 28.1", "/G28.1", "g28.0999999"])
async def test_g28_1_in_every_spelling_stores_the_position(line: str) -> None:
    async with grbl() as (_emulator, host):
        assert await host.command("G0 X12 Y34") == ["ok"]
        assert await host.command(line) == ["ok"]
        assert "[G28:12.000,34.000,0.000]" in await host.command("$#")


async def test_jog_and_program_pause() -> None:
    async with grbl() as (emulator, host):
        assert await host.command("$/J=G91 X10 F600") == ["ok"]
        assert emulator.position == (10.0, 0.0, 0.0)
        # M0 (and M00, /m0): Hold:0 until cycle start; its ok comes only then.
        for line in (b"M0\n", b"M00\n", b"/m0.001\n"):
            host.write(line)
            await host.wait_state("Hold:0")
            assert await host.silent_for(0.2)
            host.write(b"~")
            assert await host.read_line() == "ok"
            assert (await host.status())["state"] == "Idle"
        # M1 (optional stop) is accepted and ignored by GRBL 1.1.
        assert await host.command("M1") == ["ok"]
        assert (await host.status())["state"] == "Idle"


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        ("G266", "error:23"),  # uint8 wrap: int_value 10, mantissa 25600
        ("G10.01 L2 P1 X1", "error:23"),
        ("G28.2", "error:20"),
        ("G59.1", "error:23"),  # int_value 59 with a mantissa (gcode.c)
        ("G49.5", "ok"),  # gcode.c zeroes G49's mantissa
        ("M0.5", "error:23"),
        ("$HX", "error:3"),  # HOMING_SINGLE_AXIS_COMMANDS is off in a default build
        ("$JX", "error:3"),
        ("$N0G0", "error:3"),
        ("$NX=G0", "error:2"),
        ("$256=1", "error:3"),
        ("$10=1X", "error:3"),
        ("$RST=A", "error:3"),
        ("G0\x7fX1", "error:1"),  # DEL is above space: GRBL keeps it
    ],
)
async def test_what_the_firmware_refuses(line: str, answer: str) -> None:
    async with grbl() as (emulator, host):
        assert (await host.command(line))[-1] == answer
        if answer != "ok":
            assert emulator.executed == []
