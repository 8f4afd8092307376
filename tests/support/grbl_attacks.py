"""Lines that got past the old regex blocklist, and their variants: each must be refused
``blocked_instruction`` at its line (tests/unit/test_grbl_allowlist.py, and end to end over
MQTT in tests/integration/test_grbl_allowlist_mqtt.py). What each does on the firmware is
shown in tests/emulators/test_grbl_emulator_parsing.py."""

from __future__ import annotations

ATTACK_LINE = 3


def attack_program(line: str) -> str:
    """A short, valid program with ``line`` as its line 3."""
    return f"G21 G90\nG0 X20 Y20\n{line}\nG0 X0 Y0\n"


# (attack line, the command the refusal must name).
ATTACKS: list[tuple[str, str]] = [
    # Seen accepted by the old guard.
    ("$/N0=G0X500Y500", "$Nx="),
    ("$/100=1", "$x="),
    ("$/H", "$H"),
    ("$/C", "$C"),
    ("$/X", "$X"),
    ("G10 L02 P1 X100 Y50", "G10"),
    ("L2 G10 P2 X7", "G10"),
    ("G028.1", "G28.1"),
    ("$J=G91 X10 F600", "$J="),
    ("M0", "M0"),
    # Lower case.
    ("$h", "$H"),
    ("$x", "$X"),
    ("$c", "$C"),
    ("$n0=g0x500y500", "$Nx="),
    ("$j=g91x10f600", "$J="),
    ("g10 l2 p1 x0", "G10"),
    ("g28.1", "G28.1"),
    ("m0", "M0"),
    # Spaces inside words and commands.
    ("$ 1 0 0 = 1", "$x="),
    ("$ H", "$H"),
    ("$ N 0 = G 0 X 5", "$Nx="),
    ("G 1 0 L 2 P 1 X 0", "G10"),
    ("G28 .1", "G28.1"),
    ("G0 28.1", "G28.1"),  # reads as G028.1
    ("\t$\tX", "$X"),
    # '/' anywhere: GRBL drops it.
    ("/$H", "$H"),
    ("$H/", "$H"),
    ("$1/00=1", "$x="),
    ("G10/L2P1X0", "G10"),
    ("/G/2/8/./1", "G28.1"),
    ("/M0", "M0"),
    # Setting numbers as read_float reads them.
    ("$+10=0", "$x="),
    ("$10.0=0", "$x="),
    ("$.5=10", "$x="),
    ("$0100=1", "$x="),
    ("$100.=1", "$x="),
    ("$-0=0", "$x="),
    ("$N+0=G0X5", "$Nx="),
    ("$N0.7=G0X5", "$Nx="),
    # G and M numbers as gcode.c computes them.
    ("G10.0L2P1X0", "G10"),
    ("G10 L2.0 P1 X0", "G10"),
    ("G10 L2.5 P1 X0", "G10"),
    ("G010 L20 P1 X0", "G10"),
    ("G10.001 L2 P1 X0", "G10"),
    ("G030.10", "G30.1"),
    ("G30.1", "G30.1"),
    ("G28.1 (set home)", "G28.1"),
    ("G28.0999999", "G28.1"),
    ("M00", "M0"),
    ("M0.0", "M0"),
    ("M0.004", "M0"),
    ("M1", "M1"),
    ("M01", "M1"),
    ("G16394 L2 P1 X0", "G16394"),  # uint8/uint16 wrap: G10 on an AVR
    ("G266", "G266"),
    # Words in any order, line numbers, other commands a job may not use.
    ("N10 G28.1", "G28.1"),
    ("X0 P0 L20 G10", "G10"),
    ("G92 X0 Y0", "G92"),
    ("G53 G0 X0", "G53"),
    ("G38.2 Z-10 F100", "G38.2"),
    ("G43.1 Z1", "G43.1"),
    ("G28", "G28"),
    # Comments: a closed '(' comment hides nothing from GRBL.
    ("(note) $H", "$H"),
    ("(x ; y) $X", "$X"),
    # Every other '$' line.
    ("$RST=*", "$RST="),
    ("$I=evil", "$I="),
    ("$SLP", "$SLP"),
    ("$HX", "$H"),
    ("$$", "$$"),
    ("$#", "$#"),
    ("$G", "$G"),
    ("$I", "$I"),
    ("$N", "$N"),
    ("$", "$"),
    ("$J=G53X0F100", "$J="),
    ("$Q", "'$Q'"),
]
